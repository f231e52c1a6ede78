//! The fuzz targets' seeds and every input the fuzzer found a fault with (`fuzz/seeds/<target>`,
//! `fuzz/regressions/<target>`), replayed through the same entry points (`sensorflow::fuzzing`)
//! on every test run; and the range checks the fuzzing called for.

use std::path::{Path, PathBuf};

use sensorflow::fuzzing::{self, TARGETS};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// r17: no parser had been fuzzed.
#[test]
fn r17_every_fuzz_seed_and_regression_is_parsed_without_panic_and_reaches_both_outcomes() {
    let root = fuzz_dir();
    for (name, target) in TARGETS {
        let seeds = files(&root.join("seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz target {name} has no seeds in fuzz/seeds/{name}");
        let regressions = files(&root.join("regressions").join(name));
        let (mut accepted, mut rejected) = (0, 0);
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            let out = target(&data);
            accepted += out.events;
            rejected += out.rejected;
        }
        // Seeds that never get past the parser's first check would fuzz only that check.
        assert!(accepted > 0, "no seed of {name} is accepted");
        assert!(rejected > 0, "no seed of {name} is rejected");
    }
}

#[test]
fn r17_the_fuzz_crate_has_a_binary_for_every_target() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml lacks target {name}");
        assert!(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")).is_file(), "no source for {name}");
    }
}

#[test]
fn r17_json_lines_are_each_an_event_or_a_dead_letter() {
    // 8 lines: 2 plain events, 1 with an extra nested field, and 5 bad ones of different kinds.
    let data = std::fs::read(fuzz_dir().join("seeds/json_line/edge")).unwrap();
    let fast = fuzzing::json_line(&data);
    let slow = fuzzing::json_fallback(&data);
    assert_eq!(fast.events + fast.rejected, 8, "{fast:?}");
    assert_eq!(fast, slow, "the fast path and the general parser disagree");
    assert!(fast.rejected >= 4, "NaN, 1e400, an out-of-range ts and an array must be rejected: {fast:?}");
}

/// r17: a card's `short: 1e12` aborted on allocation, `long: 0` gave NaN scores.
#[test]
fn r17_model_cards_with_calibration_out_of_range_are_refused_with_the_field_named() {
    use sensorflow_models::detector::artifact::parse_card;
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/artifacts/student-int8.json"),
    )
    .unwrap();
    assert!(parse_card(&shipped, Path::new("int8.json")).is_ok());
    for (field, value, named) in [
        ("short", "1000000000000", "calibration.short"),
        ("short", "0", "calibration.short"),
        ("long", "0", "calibration.long"),
        ("min_std", "-1", "calibration.min_std"),
    ] {
        let mut card: serde_json::Value = serde_json::from_str(&shipped).unwrap();
        card["calibration"][field] = serde_json::from_str(value).unwrap();
        let err = parse_card(&card.to_string(), Path::new("bad.json")).unwrap_err().to_string();
        assert!(err.contains(named), "{field} = {value}: {err}");
    }
}

/// r17: `--window 1d --hop 1ms` put every event in 86.4 M windows; a huge window overflowed.
#[test]
fn r17_windows_that_put_an_event_in_too_many_windows_or_overflow_are_refused() {
    let check =
        |toml: &str| sensorflow::RunConfig::from_toml(toml).unwrap().validate().map_err(|e| e.to_string());
    let err = check("window = \"1d\"\nhop = \"1ms\"\n").unwrap_err();
    assert!(err.contains("86400000 windows"), "{err}");
    let err = check("window = \"3650d\"\n").unwrap_err();
    assert!(err.contains("366 days"), "{err}");
    assert!(check("window = \"1h\"\nhop = \"1s\"\n").is_ok(), "3,600 windows per event are allowed");
}

/// r17: `processes` was unbounded (1e12 built as many addresses) and the HTTP port of
/// process i (`port + i`) could overflow.
#[test]
fn r17_absurd_process_counts_and_http_ports_past_65535_are_refused() {
    let config = |toml: &str| sensorflow::RunConfig::from_toml(toml).unwrap();
    let err = config("processes = 1000000000000\n").validate().unwrap_err().to_string();
    assert!(err.contains("processes must be 1..=1024"), "{err}");
    let c = config("processes = 2\nprocess = 1\nhttp = \"127.0.0.1:65535\"\n");
    let err = c.http_addr().unwrap_err().to_string();
    assert!(err.contains("over 65535"), "{err}");
    let c = config("processes = 2\nprocess = 1\nhttp = \"127.0.0.1:9000\"\n");
    assert_eq!(c.http_addr().unwrap().as_deref(), Some("127.0.0.1:9001"));
}
