//! The gRPC port's method table: every method of `aerolith.v1.Documents` with the role it
//! needs (API.md "Authentication"), and the other services' paths. Admission and the
//! metrics labels both read it, so a method cannot be served under one name and counted
//! or authorised under another.

use aerolith_common::auth::Role::{self, Admin, Read, Write};

/// The path prefix of the document service's methods.
const DOCUMENTS: &str = "/aerolith.v1.Documents/";

/// Every method of `aerolith.v1.Documents` and the least role that may call it.
pub const METHODS: [(&str, Role); 15] = [
    ("ListCollections", Read),
    ("CreateCollection", Write),
    ("GetCollection", Read),
    ("DeleteCollection", Admin),
    ("GetDocument", Read),
    ("PutDocument", Write),
    ("PatchDocument", Write),
    ("DeleteDocument", Write),
    ("Query", Read),
    ("Count", Read),
    ("BulkWrite", Write),
    ("Watch", Read),
    ("CreateIndex", Write),
    ("ListIndexes", Read),
    ("DropIndex", Write),
];

/// What a call's path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A method of the table.
    Documents(&'static str, Role),
    /// `grpc.health.v1`: open to anyone, like `/readyz`.
    Health,
    /// Server reflection: a read.
    Reflection,
    /// Anything else: only an admin gets past admission (failing closed, so a method
    /// added to the service before the table cannot be reached with a read token).
    Unknown,
}

impl Method {
    /// The method a call's path (`/package.Service/Method`) names.
    pub fn of(path: &str) -> Method {
        if let Some(name) = path.strip_prefix(DOCUMENTS) {
            return METHODS
                .iter()
                .find(|(m, _)| *m == name)
                .map_or(Method::Unknown, |(m, role)| Method::Documents(m, *role));
        }
        if path.starts_with("/grpc.health.v1.Health/") {
            Method::Health
        } else if path.starts_with("/grpc.reflection.") {
            Method::Reflection
        } else {
            Method::Unknown
        }
    }

    /// The role a call needs; `None` for the health service.
    pub fn role(self) -> Option<Role> {
        match self {
            Method::Documents(_, role) => Some(role),
            Method::Health => None,
            Method::Reflection => Some(Read),
            Method::Unknown => Some(Admin),
        }
    }

    /// The `op` label of its metrics (a bounded set: clients cannot mint series).
    pub fn label(self) -> &'static str {
        match self {
            Method::Documents(name, _) => name,
            Method::Health => "health",
            Method::Reflection => "reflection",
            Method::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_need_the_roles_api_md_gives_them() {
        let role = |p: &str| Method::of(p).role();
        assert_eq!(role("/grpc.health.v1.Health/Check"), None);
        assert_eq!(role("/aerolith.v1.Documents/Watch"), Some(Read));
        assert_eq!(
            role("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Some(Read)
        );
        assert_eq!(role("/aerolith.v1.Documents/BulkWrite"), Some(Write));
        assert_eq!(role("/aerolith.v1.Documents/DeleteCollection"), Some(Admin));
        assert_eq!(
            role("/aerolith.v1.Documents/SomethingNew"),
            Some(Admin),
            "unknown methods fail closed"
        );
        assert_eq!(role("/other.Service/GetDocument"), Some(Admin));
    }

    #[test]
    fn labels_are_bounded() {
        let label = |p: &str| Method::of(p).label();
        assert_eq!(label("/aerolith.v1.Documents/PutDocument"), "PutDocument");
        assert_eq!(label("/aerolith.v1.Documents/Nope"), "unknown");
        assert_eq!(label("/grpc.health.v1.Health/Watch"), "health");
        assert_eq!(label("/whatever"), "unknown");
    }
}
