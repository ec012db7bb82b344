//! Record bodies: a JSON object of `field0`..`fieldN` holding random printable text.

use rand::Rng;

/// A record's shape, also as command-line flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Shape {
    /// Fields per record.
    #[arg(long, default_value_t = 10)]
    pub field_count: usize,
    /// Bytes per field.
    #[arg(long, default_value_t = 100)]
    pub field_length: usize,
}

/// One record's body as JSON text (an object), sent as is by every driver.
pub fn record(rng: &mut impl Rng, field_count: usize, field_length: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = String::with_capacity(field_count * (field_length + 12) + 2);
    out.push('{');
    for f in 0..field_count {
        if f > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"field{f}\":\""));
        out.extend((0..field_length).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char));
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_record_is_a_json_object_of_the_asked_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let r = record(&mut rng, 10, 100);
        let v: serde_json::Value = serde_json::from_str(&r).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 10);
        assert!(o.values().all(|f| f.as_str().unwrap().len() == 100));
    }
}
