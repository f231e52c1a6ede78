//! Human durations in configs and flags: `250ms`, `10s`, `5m`, `2h`, `1d` (or plain ms).

/// Parses a duration into milliseconds.
pub fn parse_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("duration {s:?} must start with a whole number"))?;
    let scale = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("duration {s:?} has unknown unit {other:?} (use ms, s, m, h, d)")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("duration {s:?} is too large"))
}

/// Serde helper: a duration given as a string (`"30s"`) or a number of milliseconds.
pub mod serde_ms {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Ms(u64),
        Text(String),
    }

    /// Deserializes a duration in ms.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Ms(ms) => Ok(ms),
            Raw::Text(s) => super::parse_ms(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_ms("250ms"), Ok(250));
        assert_eq!(parse_ms("250"), Ok(250));
        assert_eq!(parse_ms("10s"), Ok(10_000));
        assert_eq!(parse_ms("5m"), Ok(300_000));
        assert_eq!(parse_ms("2h"), Ok(7_200_000));
        assert!(parse_ms("10 parsecs").is_err());
        assert!(parse_ms("s").is_err());
        assert!(parse_ms("99999999999999999999d").is_err());
    }
}
