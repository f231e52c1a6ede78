//! The benchmark datasets, generated here (seeded) and cached by name in the data directory.
//!
//! - The **W2 reference shape** (issue 16; `../shared/bench/gen_w2.py` writes the same shape
//!   with Python's generator): event `i` has `ts = 1_700_000_000_000 + i / 10` ms (10,000
//!   events per second of event time), device `(i · 7919) mod 1000`, so each device gets one
//!   event in every 1,000 and 10 per 1-s window, `seq` counting per device from 0, and value
//!   `20 + 5 sin(2π t / 60 s + phase(device)) + N(0, 0.5)` to 2 decimals, or with probability
//!   1/20,000 a spike `80.5 + U(0, 19.5)`: about one `max > 80` alert per 20,000 events. W1
//!   (as a binary log), W2 and W3 (as JSON lines) read these events.
//! - The **alert storm**: the same layout (device `i mod 1000`) with values spread evenly over
//!   20.00–81.99, so `max > 80` fires in about a quarter of the windows.
//! - The **M** fleets: distinct devices with one event each.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sensorflow_operators::{Dictionary, Event};

use crate::connectors::binlog::LogWriter;
use crate::Error;

/// The first event time of every W dataset, ms.
pub const T0: u64 = 1_700_000_000_000;
/// Devices in the W datasets.
pub const DEVICES: usize = 1000;

/// SplitMix64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller; one of the pair is used).
    fn gauss(&mut self) -> f64 {
        let u = 1.0 - self.uniform(); // (0, 1]: the logarithm stays finite
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Calls `each(device, ts, value, seq)` for the `events` events of the W2 reference shape
/// drawn with `seed` (see the module documentation); values are rounded to 2 decimals, as
/// the JSON file writes them, so the log and the file hold the same numbers.
pub fn reference_events(
    events: u64,
    seed: u64,
    mut each: impl FnMut(usize, u64, f64, u64) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut rng = Rng(seed);
    let phase: Vec<f64> = (0..DEVICES).map(|_| rng.uniform() * std::f64::consts::TAU).collect();
    let mut seq = vec![0u64; DEVICES];
    let per_ms = std::f64::consts::TAU / 60_000.0;
    for i in 0..events {
        let ts = T0 + i / 10;
        let device = ((i * 7919) % DEVICES as u64) as usize;
        let value = if rng.uniform() < 1.0 / 20_000.0 {
            80.5 + rng.uniform() * 19.5
        } else {
            20.0 + 5.0 * ((ts - T0) as f64 * per_ms + phase[device]).sin() + 0.5 * rng.gauss()
        };
        each(device, ts, (value * 100.0).round() / 100.0, seq[device])?;
        seq[device] += 1;
    }
    Ok(())
}

/// The alert storm's events: a xorshift stream over 20.00 .. 81.99; event `i` belongs to
/// device `i % 1000` at `T0 + i / 10` ms.
fn storm_events(
    events: u64,
    mut each: impl FnMut(usize, u64, f64, u64) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut seq = vec![0u64; DEVICES];
    for i in 0..events {
        let device = (i % DEVICES as u64) as usize;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let value = 20.0 + (rng % 6200) as f64 / 100.0;
        each(device, T0 + i / 10, value, seq[device])?;
        seq[device] += 1;
    }
    Ok(())
}

/// `dir/name`, generated on first use: `write` fills a temporary file beside it, which is
/// renamed into place only once complete, so an interrupted run never leaves a partial dataset
/// that later runs would take as generated.
fn cached_dataset(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension("tmp");
    write(&tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Writes events as JSON lines of the W2 shape to `tmp`.
fn write_json(
    tmp: &Path,
    events: impl FnOnce(&mut dyn FnMut(usize, u64, f64, u64) -> Result<(), Error>) -> Result<(), Error>,
) -> Result<(), Error> {
    let file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
    let mut w = BufWriter::with_capacity(1 << 22, file);
    events(&mut |device, ts, value, seq| {
        writeln!(
            w,
            r#"{{"device":"dev-{device:06}","metric":"temperature","ts":{ts},"value":{value:.2},"seq":{seq}}}"#
        )
        .map_err(|e| Error::io(tmp, e))
    })?;
    w.flush().map_err(|e| Error::io(tmp, e))
}

/// The W2/W3 dataset: `events` JSON lines of the reference shape drawn with `seed`, in `dir`
/// (generated on first use).
pub fn json_dataset(dir: &Path, events: u64, seed: u64) -> Result<PathBuf, Error> {
    cached_dataset(dir, &format!("w2-ref-v1-{events}-seed{seed}.jsonl"), |tmp| {
        write_json(tmp, |each| reference_events(events, seed, each))
    })
}

/// The alert storm's `events` JSON lines in `dir` (generated on first use).
pub fn storm_dataset(dir: &Path, events: u64) -> Result<PathBuf, Error> {
    cached_dataset(dir, &format!("storm-{events}.jsonl"), |tmp| {
        write_json(tmp, |each| storm_events(events, each))
    })
}

/// The W1 dataset: the reference shape's `events` events drawn with `seed`, as a binary log
/// in `dir` (generated on first use).
pub fn log_dataset(dir: &Path, events: u64, seed: u64) -> Result<PathBuf, Error> {
    cached_dataset(dir, &format!("w1-ref-v1-{events}-seed{seed}.sflog"), |tmp| {
        let dict = Dictionary::default();
        let devices: Vec<_> = (0..DEVICES).map(|d| dict.device(&format!("dev-{d:06}"))).collect();
        let metric = dict.metric("temperature");
        let mut w = LogWriter::create(tmp)?;
        let mut chunk = Vec::with_capacity(1 << 16);
        reference_events(events, seed, |device, ts, value, seq| {
            chunk.push(Event { device: devices[device], metric, ts, value, seq });
            if chunk.len() == 1 << 16 {
                w.write(&chunk, &dict)?;
                chunk.clear();
            }
            Ok(())
        })?;
        w.write(&chunk, &dict)?;
        w.finish()?;
        Ok(())
    })
}

/// The M dataset: `devices` distinct devices with one event each, 10,000 per second of event
/// time (generated on first use).
pub fn devices_dataset(dir: &Path, devices: u64) -> Result<PathBuf, Error> {
    cached_dataset(dir, &format!("m-{devices}.jsonl"), |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 22, file);
        for i in 0..devices {
            writeln!(
                w,
                r#"{{"device":"dev-{i:08}","metric":"temperature","ts":{},"value":{:.2},"seq":0}}"#,
                T0 + i / 10,
                20.0 + (i % 100) as f64 / 10.0
            )
            .map_err(|e| Error::io(tmp, e))?;
        }
        w.flush().map_err(|e| Error::io(tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_shape_has_ten_events_per_device_and_window_and_rare_spikes() {
        let (mut per_window, mut spikes, mut n, mut sum, mut sumsq) =
            (std::collections::HashMap::new(), 0u64, 0u64, 0.0, 0.0);
        let mut seqs = vec![0u64; DEVICES];
        reference_events(400_000, 42, |device, ts, value, seq| {
            assert_eq!(seq, seqs[device], "seq counts per device from 0");
            seqs[device] += 1;
            *per_window.entry((device, (ts - T0) / 1000)).or_insert(0u32) += 1;
            if value > 80.0 {
                spikes += 1;
            } else {
                n += 1;
                sum += value;
                sumsq += value * value;
            }
            Ok(())
        })
        .unwrap();
        assert!(per_window.values().all(|&c| c == 10), "10 events per device per 1-s window");
        assert_eq!(per_window.len(), 40 * DEVICES);
        // 400,000 events at 1/20,000: 20 spikes expected (Poisson: 8..32 covers 99.9 %).
        assert!((8..=32).contains(&spikes), "{spikes} spikes");
        // Sine of amplitude 5 (variance 12.5) plus noise of 0.5 (0.25) around 20.
        let mean = sum / n as f64;
        let var = sumsq / n as f64 - mean * mean;
        assert!((mean - 20.0).abs() < 0.1, "mean {mean}");
        assert!((var - 12.75).abs() < 0.5, "variance {var}");
    }

    #[test]
    fn the_same_seed_gives_the_same_events_and_another_seed_others() {
        let draw = |seed| {
            let mut v = Vec::new();
            reference_events(5_000, seed, |d, ts, x, s| {
                v.push((d, ts, x.to_bits(), s));
                Ok(())
            })
            .unwrap();
            v
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }
}
