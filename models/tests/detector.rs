//! Training, distillation, pruning, quantization and model files on small seeded data.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sensorflow_models::detector::artifact::{
    load_scorer, load_student, quantize, read_card, save_student, ModelCard, ModelError, Normalization,
    Provenance, FORMAT,
};
use sensorflow_models::detector::data::{generate, DataConfig, Dataset, DRIFT_LABEL};
use sensorflow_models::detector::inference::{
    max_abs_diff, predict_dataset, teacher_probabilities, PlainMlp,
};
use sensorflow_models::detector::training::{
    prune_student, teacher_logits, train_student, train_teacher, weight_sparsity, Distill, TrainConfig,
};

fn tiny(seed: u64) -> Dataset {
    generate(&DataConfig {
        seed,
        series: 40,
        samples: 1500,
        window: 64,
        negative_keep: 0.15,
        drift_label: Some(DRIFT_LABEL),
    })
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig { epochs, batch: 128, lr: 3e-3, budget: Duration::from_secs(120), seed: 7 }
}

#[test]
fn training_loss_falls() {
    let data = tiny(1);
    let mut losses = Vec::new();
    train_student(&data, 16, None, &cfg(5), &mut |p| losses.push(p.loss));
    assert_eq!(losses.len(), 5);
    assert!(losses[4] < losses[0] * 0.9, "loss should fall: {losses:?}");
}

#[test]
fn distilled_student_tracks_the_teacher_better_than_an_undistilled_one() {
    let data = tiny(2);
    let held = generate(&DataConfig {
        seed: 99,
        series: 10,
        samples: 1500,
        window: 64,
        negative_keep: 0.3,
        drift_label: Some(DRIFT_LABEL),
    });
    let teacher = train_teacher(&data, &cfg(4), &mut |_| {});
    let logits = teacher_logits(&teacher, &data);
    let plain = train_student(&data, 8, None, &cfg(4), &mut |_| {});
    let distilled = train_student(
        &data,
        8,
        Some((&logits, Distill { temperature: 2.0, alpha: 0.1 })),
        &cfg(4),
        &mut |_| {},
    );
    let t = teacher_probabilities(&teacher, &held);
    let gap = |s: &sensorflow_models::detector::model::Student| {
        let p = predict_dataset(&PlainMlp::from_student(s), &held);
        p.iter().zip(&t).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / t.len() as f64
    };
    let (g_plain, g_distilled) = (gap(&plain), gap(&distilled));
    assert!(g_distilled < g_plain, "distilled gap {g_distilled:.4} should be below undistilled {g_plain:.4}");
}

#[test]
fn pruning_reaches_its_target_sparsity_and_quantization_stays_close() {
    let data = tiny(3);
    let student = train_student(&data, 16, None, &cfg(2), &mut |_| {});
    assert!(weight_sparsity(&student) < 0.01, "a trained student is dense");
    let pruned = prune_student(student, &data, None, (0.2, 0.8), &cfg(2), &mut |_| {});
    let s = weight_sparsity(&pruned);
    assert!((0.79..=0.81).contains(&s), "sparsity {s}");
    let q = quantize(&pruned);
    let f32_scores = predict_dataset(&PlainMlp::from_student(&pruned), &data);
    let int8_scores = predict_dataset(&PlainMlp::from_student(&q), &data);
    let diff = max_abs_diff(&f32_scores, &int8_scores);
    // Stated tolerance: int8 weights move any probability by at most 0.05.
    assert!(diff <= 0.05, "int8 scores differ by up to {diff}");
    assert!(diff > 0.0, "quantization should change something");
}

fn card(name: &str, hidden: usize, quantized: bool) -> ModelCard {
    ModelCard {
        format: FORMAT,
        kind: "student-mlp".into(),
        name: name.into(),
        window: 64,
        hidden: Some(hidden),
        quantization: quantized.then(|| "int8-symmetric".into()),
        normalization: Normalization::default(),
        threshold: 0.9,
        provenance: Provenance {
            data: DataConfig::train(1, 64),
            train: TrainConfig::default(),
            distill: None,
            pruning: None,
        },
        metrics: None,
        compression: None,
        calibration: None,
    }
}

#[test]
fn model_files_round_trip_and_int8_is_smaller() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny(4);
    let student = train_student(&data, 16, None, &cfg(1), &mut |_| {});
    let f32_bytes = save_student(dir.path(), &student, &card("s", 16, false)).unwrap();
    let q = quantize(&student);
    let int8_bytes = save_student(dir.path(), &q, &card("q", 16, true)).unwrap();
    // Weights shrink 4x; the file keeps names and quantization scales besides.
    assert!(int8_bytes * 100 < f32_bytes * 55, "int8 {int8_bytes} vs f32 {f32_bytes}");
    let (back, c) = load_student(dir.path(), "s").unwrap();
    assert_eq!(c.threshold, 0.9);
    let a = predict_dataset(&PlainMlp::from_student(&student), &data);
    let b = predict_dataset(&PlainMlp::from_student(&back), &data);
    assert_eq!(a, b, "f32 weights load back exactly");
    let scorer = load_scorer(dir.path(), "q").unwrap();
    let c = predict_dataset(&scorer.mlp, &data);
    assert!(max_abs_diff(&c, &predict_dataset(&PlainMlp::from_student(&q), &data)) < 1e-6);
}

#[test]
fn missing_or_corrupt_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load_student(dir.path(), "nothing").unwrap_err();
    assert!(matches!(missing, ModelError::Io { .. }), "{missing}");
    assert!(missing.to_string().contains("nothing.json"));

    let data = tiny(5);
    let student = train_student(&data, 8, None, &cfg(1), &mut |_| {});
    save_student(dir.path(), &student, &card("m", 8, false)).unwrap();
    // Corrupt weights: flip bytes in the middle of the file.
    let bpk = dir.path().join("m.bpk");
    let mut bytes = std::fs::read(&bpk).unwrap();
    let mid = bytes.len() / 3;
    bytes.truncate(mid);
    std::fs::write(&bpk, &bytes).unwrap();
    let err = load_student(dir.path(), "m").unwrap_err();
    assert!(matches!(err, ModelError::Weights { .. }), "{err}");
    std::fs::write(&bpk, b"not a burnpack file at all").unwrap();
    assert!(matches!(load_student(dir.path(), "m").unwrap_err(), ModelError::Weights { .. }));

    // A card that does not fit the weights.
    save_student(dir.path(), &student, &card("m", 8, false)).unwrap();
    let json = dir.path().join("m.json");
    let text = std::fs::read_to_string(&json).unwrap().replace("\"hidden\": 8", "\"hidden\": 9");
    std::fs::write(&json, text).unwrap();
    assert!(load_student(dir.path(), "m").is_err());
    // A card from the future, and one that is not JSON.
    let text = std::fs::read_to_string(&json).unwrap().replace("\"format\": 1", "\"format\": 99");
    std::fs::write(&json, text).unwrap();
    assert!(read_card(&json).unwrap_err().to_string().contains("format 99"));
    std::fs::write(&json, "{ not json").unwrap();
    assert!(matches!(read_card(&json).unwrap_err(), ModelError::Card { .. }));
}

#[test]
fn zlib_model_files_round_trip_shrink_pruned_int8_weights_and_fail_clearly_when_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny(6);
    let student = train_student(&data, 16, None, &cfg(1), &mut |_| {});
    let zlib = |name: &str, quantized: bool| ModelCard {
        compression: Some("zlib".into()),
        ..card(name, 16, quantized)
    };
    let f32_bytes = save_student(dir.path(), &student, &zlib("f", false)).unwrap();
    let pruned = prune_student(student.clone(), &data, None, (0.2, 0.8), &cfg(1), &mut |_| {});
    let q = quantize(&pruned);
    let int8_bytes = save_student(dir.path(), &q, &zlib("q", true)).unwrap();
    // 80 % zeros at one byte each compress far below a quarter of the dense f32 file.
    assert!(int8_bytes * 100 <= f32_bytes * 30, "int8 {int8_bytes} vs f32 {f32_bytes}");
    let (back, c) = load_student(dir.path(), "f").unwrap();
    assert_eq!(c.compression.as_deref(), Some("zlib"));
    assert_eq!(
        predict_dataset(&PlainMlp::from_student(&student), &data),
        predict_dataset(&PlainMlp::from_student(&back), &data),
        "compressed f32 weights load back exactly"
    );
    let scorer = load_scorer(dir.path(), "q").unwrap();
    let expected = predict_dataset(&PlainMlp::from_student(&q), &data);
    assert!(max_abs_diff(&predict_dataset(&scorer.mlp, &data), &expected) < 1e-6);
    // Truncated compressed data, and a card naming an unknown compression.
    let bpk = dir.path().join("q.bpk");
    let bytes = std::fs::read(&bpk).unwrap();
    std::fs::write(&bpk, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_student(dir.path(), "q").unwrap_err();
    assert!(matches!(err, ModelError::Weights { .. }) && err.to_string().contains("zlib"), "{err}");
    let json = dir.path().join("f.json");
    let text = std::fs::read_to_string(&json).unwrap().replace("\"zlib\"", "\"lz4\"");
    std::fs::write(&json, text).unwrap();
    assert!(load_student(dir.path(), "f").unwrap_err().to_string().contains("lz4"));
}

#[test]
fn the_shipped_default_model_loads() {
    let s = sensorflow_models::detector::artifact::default_scorer().unwrap();
    assert_eq!(s.mlp.window, 64);
    assert!(s.threshold > 0.0 && s.threshold < 1.0);
    assert!(s.calibration.is_some(), "the default model calibrates its scores per series");
    assert!(s.mlp.nonzero() < s.mlp.params() / 2, "the default model is the pruned int8 student");
}

#[test]
fn quick_optimization_reports_its_progress_notes_and_reports_as_events() {
    use sensorflow_models::detector::optimize::{optimize, Event, Options};
    let dir = tempfile::tempdir().unwrap();
    let opts = Options { quick: true, budget: Duration::from_secs(60), ..Options::new(dir.path()) };
    let mut events = Vec::new();
    let rows = optimize(&opts, &mut |e| events.push(e)).unwrap();
    let notes: Vec<&str> =
        events.iter().filter_map(|e| if let Event::Note(n) = e { Some(n.as_str()) } else { None }).collect();
    assert_eq!(notes.len(), 5, "{notes:?}");
    assert!(notes.iter().filter(|n| n.starts_with("data: ")).count() == 4, "{notes:?}");
    assert!(notes[3].starts_with("pruned: ") && notes[3].ends_with("% of weights are zero"), "{notes:?}");
    // Every training run reports its epochs, then that it ended.
    let runs = ["teacher", "student (labels only)", "student (distilled)", "prune"];
    let mut ended = Vec::new();
    let mut epochs = 0;
    for e in &events {
        match e {
            Event::Epoch { step, progress } => {
                assert_eq!(step, runs[ended.len()]);
                epochs += 1;
                assert_eq!((progress.epoch, progress.epochs), (epochs, 2));
            }
            Event::Trained { step } => {
                assert_eq!(epochs, 2, "{step}");
                ended.push(step.as_str());
                epochs = 0;
            }
            _ => {}
        }
    }
    assert_eq!(ended, runs);
    let reports: Vec<&Vec<_>> = events
        .iter()
        .filter_map(|e| if let Event::Report { rows, .. } = e { Some(rows) } else { None })
        .collect();
    assert_eq!(reports.len(), 4);
    assert_eq!(reports[3], &rows);
    let measured = events.iter().filter(|e| matches!(e, Event::Row(_))).count();
    assert_eq!(measured, rows.len(), "each row is reported once as measured");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let Some(Event::Report { table, .. }) = events.last() else { panic!("the report comes last") };
    assert_eq!(md, format!("# Optimization report\n\n{table}"));
}
