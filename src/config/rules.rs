//! Rules files: threshold rules and device metadata in TOML, validated strictly (unknown
//! fields are errors, so a typo never silently disables a rule).

use std::collections::BTreeSet;
use std::path::Path;

use sensorflow_operators::{Comparator, Control, DeviceMeta, Field, Rule, TotalF64};
use serde::Deserialize;

use crate::config::duration::serde_ms;

/// The rules `sensorflow run` uses when given none; tuned to the simulator's anomalies.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// A rules file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Unreadable file.
    #[error("cannot read rules file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML or not the expected shape.
    #[error("rules file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    metric: String,
    #[serde(default)]
    devices: Option<String>,
    #[serde(default = "default_field")]
    field: Field,
    op: Comparator,
    value: f64,
    #[serde(default)]
    hysteresis: f64,
    #[serde(default, deserialize_with = "serde_ms::deserialize")]
    min_duration: u64,
    #[serde(default = "default_severity")]
    severity: String,
    #[serde(default)]
    early: bool,
}

fn default_field() -> Field {
    Field::Mean
}

fn default_severity() -> String {
    "warning".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSpec {
    name: String,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    device: Vec<DeviceSpec>,
}

/// The contents of a rules file as a set of [`Control`] records.
pub fn parse_rules(text: &str, path: &str) -> Result<Vec<Control>, RulesError> {
    let invalid = |message: String| RulesError::Invalid { path: path.to_string(), message };
    let spec: FileSpec = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for r in spec.rule {
        if r.name.is_empty() || r.name.contains('/') {
            return Err(invalid(format!("rule name {:?} must be non-empty and contain no '/'", r.name)));
        }
        if !names.insert(r.name.clone()) {
            return Err(invalid(format!("rule {:?} is defined twice", r.name)));
        }
        if !r.value.is_finite() {
            return Err(invalid(format!("rule {:?}: value must be finite", r.name)));
        }
        if !(r.hysteresis.is_finite() && r.hysteresis >= 0.0) {
            return Err(invalid(format!("rule {:?}: hysteresis must be >= 0", r.name)));
        }
        let rule = Rule {
            name: r.name,
            metric: r.metric,
            devices: r.devices,
            field: r.field,
            op: r.op,
            value: TotalF64(r.value),
            hysteresis: TotalF64(r.hysteresis),
            min_duration_ms: r.min_duration,
            severity: r.severity,
            early: r.early,
        };
        if rule.early && !rule.can_fire_early() {
            return Err(invalid(format!(
                "rule {:?}: early = true needs a condition that can only become true and stay true as \
                 a window fills (max > or >=, min < or <=, count > or >=) and no min_duration",
                rule.name
            )));
        }
        out.push(Control::Rule(rule));
    }
    let mut devices = BTreeSet::new();
    for d in spec.device {
        if !devices.insert(d.name.clone()) {
            return Err(invalid(format!("device {:?} is listed twice", d.name)));
        }
        out.push(Control::Device(DeviceMeta { device: d.name, site: d.site, owner: d.owner }));
    }
    Ok(out)
}

/// Reads and parses a rules file.
pub fn load_rules(path: &Path) -> Result<Vec<Control>, RulesError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| RulesError::Io { path: path.display().to_string(), source })?;
    parse_rules(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_parse() {
        let rules = parse_rules(DEFAULT_RULES, "default").unwrap();
        assert!(rules.iter().filter(|c| matches!(c, Control::Rule(_))).count() >= 4);
    }

    #[test]
    fn full_rule_and_device() {
        let text = r#"
            [[rule]]
            name = "hot"
            metric = "temperature"
            devices = "dev-00*"
            field = "max"
            op = ">="
            value = 80
            hysteresis = 2.5
            min_duration = "30s"
            severity = "critical"

            [[device]]
            name = "dev-001"
            site = "plant-a"
        "#;
        let got = parse_rules(text, "t").unwrap();
        let Control::Rule(r) = &got[0] else { panic!("expected a rule first") };
        assert_eq!(
            (r.field, r.op, r.value.0, r.hysteresis.0, r.min_duration_ms),
            (Field::Max, Comparator::AtLeast, 80.0, 2.5, 30_000)
        );
        assert_eq!(r.devices.as_deref(), Some("dev-00*"));
        let Control::Device(d) = &got[1] else { panic!("expected a device second") };
        assert_eq!(
            (d.device.as_str(), d.site.as_deref(), d.owner.as_deref()),
            ("dev-001", Some("plant-a"), None)
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_errors() {
        let typo = "[[rule]]\nname='a'\nmetric='m'\nop='>'\nvalue=1\nthreshold=3\n";
        let err = parse_rules(typo, "t").unwrap_err().to_string();
        assert!(err.contains("unknown field `threshold`"), "{err}");
        let bad_op = "[[rule]]\nname='a'\nmetric='m'\nop='=='\nvalue=1\n";
        assert!(parse_rules(bad_op, "t").is_err());
        let twice = "[[rule]]\nname='a'\nmetric='m'\nop='>'\nvalue=1\n[[rule]]\nname='a'\nmetric='m'\nop='<'\nvalue=1\n";
        assert!(parse_rules(twice, "t").unwrap_err().to_string().contains("twice"));
        let neg = "[[rule]]\nname='a'\nmetric='m'\nop='>'\nvalue=1\nhysteresis=-1\n";
        assert!(parse_rules(neg, "t").is_err());
        assert!(parse_rules("[[rules]]\nname='a'", "t").is_err(), "unknown table");
    }
}
