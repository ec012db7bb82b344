//! The `JSON` scalar, converted by hand so numbers keep their exact spelling: the workspace
//! builds serde_json with `arbitrary_precision`, which async-graphql's own conversions turn
//! into objects with a private marker key; [`normalize`] undoes that in request variables.

use async_graphql::{
    InputValueError, InputValueResult, Name, Number, Scalar, ScalarType, Value as ConstValue,
};
use serde_json::Value;

use aerolith_common::body::Body;

/// serde_json's marker for a number carried as text (`arbitrary_precision`).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Any JSON value (`scalar JSON`).
#[derive(Debug, Clone, PartialEq)]
pub struct Json(pub Value);

#[Scalar(name = "JSON")]
impl ScalarType for Json {
    fn parse(value: ConstValue) -> InputValueResult<Self> {
        to_json(value).map(Json).map_err(InputValueError::custom)
    }

    fn to_value(&self) -> ConstValue {
        from_json(&self.0)
    }
}

/// A number that serde_json handed over as a marker object, as the number it is.
fn marked_number(map: &async_graphql::indexmap::IndexMap<Name, ConstValue>) -> Option<Number> {
    match (map.len(), map.get(NUMBER_TOKEN)) {
        (1, Some(ConstValue::String(s))) => s.parse().ok(),
        _ => None,
    }
}

/// Rewrites marker objects back into numbers, everywhere in `v`.
pub fn normalize(v: &mut ConstValue) {
    match v {
        ConstValue::Object(map) => {
            if let Some(n) = marked_number(map) {
                *v = ConstValue::Number(n);
            } else {
                map.values_mut().for_each(normalize);
            }
        }
        ConstValue::List(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn to_json(v: ConstValue) -> Result<Value, String> {
    Ok(match v {
        ConstValue::Null => Value::Null,
        ConstValue::Number(n) => Value::Number(n),
        ConstValue::String(s) => Value::String(s),
        ConstValue::Boolean(b) => Value::Bool(b),
        ConstValue::Enum(name) => Value::String(name.to_string()),
        ConstValue::Binary(_) => return Err("binary values are not JSON".into()),
        ConstValue::List(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        ConstValue::Object(map) => match marked_number(&map) {
            Some(n) => Value::Number(n),
            None => Value::Object(
                map.into_iter()
                    .map(|(k, v)| Ok((k.to_string(), to_json(v)?)))
                    .collect::<Result<serde_json::Map<_, _>, String>>()?,
            ),
        },
    })
}

/// A JSON value as GraphQL output, keys in the order given (documents: byte order).
pub fn from_json(v: &Value) -> ConstValue {
    match v {
        Value::Null => ConstValue::Null,
        Value::Bool(b) => ConstValue::Boolean(*b),
        Value::Number(n) => ConstValue::Number(n.clone()),
        Value::String(s) => ConstValue::String(s.clone()),
        Value::Array(items) => ConstValue::List(items.iter().map(from_json).collect()),
        Value::Object(map) => ConstValue::Object(
            map.iter()
                .map(|(k, v)| (Name::new(k), from_json(v)))
                .collect(),
        ),
    }
}

/// A stored body as the `JSON` scalar (parsed here: GraphQL answers are built as values).
pub fn body(b: &Body) -> aerolith_common::Result<Json> {
    b.object().map(|map| Json(Value::Object(map)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_objects_become_numbers() {
        let mut v: ConstValue =
            serde_json::from_str(r#"{"a": 18446744073709551615, "b": [1.50, {"c": -7}]}"#).unwrap();
        normalize(&mut v);
        let back = to_json(v).unwrap();
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            r#"{"a":18446744073709551615,"b":[1.50,{"c":-7}]}"#
        );
    }

    #[test]
    fn output_keeps_number_spelling() {
        let v: Value = serde_json::from_str(r#"{"n": 1.0, "big": 9007199254740993}"#).unwrap();
        let out = serde_json::to_string(&from_json(&v)).unwrap();
        assert_eq!(out, r#"{"big":9007199254740993,"n":1.0}"#);
    }
}
