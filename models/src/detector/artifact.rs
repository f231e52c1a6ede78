//! Model files: Burn's burnpack record (`<name>.bpk`) plus a JSON card (`<name>.json`) with
//! everything needed to use the weights: window length, normalisation, threshold, how the
//! model was trained and what it measured at export.

use std::path::{Path, PathBuf};

use burn::module::{Module, Quantizer};
use burn::tensor::quantization::{Calibration, QuantStore, QuantValue};
use sensorflow_operators::normalize::{CLIP, HORIZON};
use serde::{Deserialize, Serialize};

use super::data::DataConfig;
use super::inference::{PlainMlp, StudentScorer};
use super::model::{Student, Teacher};
use super::training::{device, Distill, TrainConfig};

/// Version of the card format.
pub const FORMAT: u32 = 1;

/// A model file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Missing or unreadable.
    #[error("model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The card is not valid.
    #[error("model card {path}: {message}")]
    Card {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The weights file is corrupt or does not fit the card.
    #[error("model weights {path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// How inputs are normalised (must match [`sensorflow_operators::normalize`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// EWMA horizon, samples.
    pub horizon: f64,
    /// Clip bound.
    pub clip: f32,
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization { horizon: HORIZON, clip: CLIP }
    }
}

/// How a model was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Training data.
    pub data: DataConfig,
    /// Optimiser settings.
    pub train: TrainConfig,
    /// Distillation, for students.
    pub distill: Option<Distill>,
    /// Pruning (initial, final sparsity), if pruned.
    pub pruning: Option<(f64, f64)>,
}

/// The JSON card beside a weights file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Card format version.
    pub format: u32,
    /// `teacher-cnn` or `student-mlp`.
    pub kind: String,
    /// Name used in alert keys.
    pub name: String,
    /// Values per window.
    pub window: usize,
    /// Hidden units (students).
    pub hidden: Option<usize>,
    /// `int8-symmetric` when the weights are quantized.
    pub quantization: Option<String>,
    /// Input normalisation.
    pub normalization: Normalization,
    /// Probability above which a window is anomalous.
    pub threshold: f32,
    /// Training provenance.
    pub provenance: Provenance,
    /// Metrics measured at export (one optimization-report row).
    pub metrics: Option<serde_json::Value>,
    /// `zlib` when the weights file is a zlib-compressed burnpack (pruned, quantized weights
    /// are mostly zeros and compress well); absent for a plain burnpack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Per-series calibration of raw scores (anomaly likelihood); `threshold` applies to the
    /// calibrated score when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<sensorflow_operators::likelihood::LikelihoodParams>,
}

/// Largest weights file, decompressed, a card may describe.
const MAX_WEIGHTS: usize = 256 << 20;

/// The burnpack bytes of a weights file as the card describes it.
fn unpack(card: &ModelCard, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    match card.compression.as_deref() {
        None => Ok(bytes),
        Some("zlib") => miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&bytes, MAX_WEIGHTS)
            .map_err(|e| format!("the weights are not valid zlib data ({:?})", e.status)),
        Some(other) => Err(format!("compression {other:?} is not supported (expected zlib)")),
    }
}

fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.bpk")), dir.join(format!("{name}.json")))
}

fn write_card(path: &Path, card: &ModelCard) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(card)
        .map_err(|e| ModelError::Card { path: path.into(), message: e.to_string() })?;
    std::fs::write(path, text).map_err(|source| ModelError::Io { path: path.into(), source })
}

/// Reads and checks a card.
pub fn read_card(path: &Path) -> Result<ModelCard, ModelError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.into(), source })?;
    let card: ModelCard = serde_json::from_str(&text)
        .map_err(|e| ModelError::Card { path: path.into(), message: e.to_string() })?;
    let bad = |message: String| ModelError::Card { path: path.into(), message };
    if card.format != FORMAT {
        return Err(bad(format!("format {} is not supported (expected {FORMAT})", card.format)));
    }
    if card.normalization != Normalization::default() {
        return Err(bad(format!("normalisation {:?} differs from the engine's", card.normalization)));
    }
    if !((24..=4096).contains(&card.window) && (0.0..=1.0).contains(&card.threshold)) {
        return Err(bad("window must be 24..=4096 and threshold in [0, 1]".into()));
    }
    Ok(card)
}

/// Saves a module (teacher, or student in f32 or int8) and its card as
/// `dir/<card.name>.{bpk,json}`; returns the size of the weights file in bytes.
pub fn save_model<M: Module + Clone>(dir: &Path, model: &M, card: &ModelCard) -> Result<u64, ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io { path: dir.into(), source })?;
    let (bpk, json) = paths(dir, &card.name);
    let plain = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| ModelError::Weights { path: bpk.clone(), message: format!("{e:?}") })?;
    let bytes = match card.compression.as_deref() {
        Some("zlib") => miniz_oxide::deflate::compress_to_vec_zlib(&plain, 10),
        _ => plain.to_vec(),
    };
    std::fs::write(&bpk, bytes).map_err(|source| ModelError::Io { path: bpk.clone(), source })?;
    write_card(&json, card)?;
    std::fs::metadata(&bpk).map(|m| m.len()).map_err(|source| ModelError::Io { path: bpk, source })
}

/// [`save_model`] for a student.
pub fn save_student(dir: &Path, student: &Student, card: &ModelCard) -> Result<u64, ModelError> {
    save_model(dir, student, card)
}

fn check_kind(card: &ModelCard, json: &Path, kind: &str) -> Result<(), ModelError> {
    if card.kind != kind {
        return Err(ModelError::Card {
            path: json.into(),
            message: format!("kind {:?} is not {kind:?}", card.kind),
        });
    }
    Ok(())
}

/// Loads a student from `dir/<name>.{bpk,json}`.
pub fn load_student(dir: &Path, name: &str) -> Result<(Student, ModelCard), ModelError> {
    let (bpk, json) = paths(dir, name);
    let card = read_card(&json)?;
    check_kind(&card, &json, "student-mlp")?;
    let bytes = std::fs::read(&bpk).map_err(|source| ModelError::Io { path: bpk.clone(), source })?;
    let student =
        student_from_bytes(&card, bytes).map_err(|message| ModelError::Weights { path: bpk, message })?;
    Ok((student, card))
}

/// Builds a student from a card and burnpack bytes.
pub fn student_from_bytes(card: &ModelCard, bytes: Vec<u8>) -> Result<Student, String> {
    let hidden = card.hidden.ok_or("student card has no hidden size")?;
    if hidden == 0 || hidden > super::inference::MAX_HIDDEN {
        return Err(format!("hidden size {hidden} is outside 1..={}", super::inference::MAX_HIDDEN));
    }
    let bytes = unpack(card, bytes)?;
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| format!("{e:?}"))?;
    let fresh = Student::new(card.window, hidden, &device());
    let fresh = if card.quantization.is_some() { quantize(&fresh) } else { fresh };
    let student = fresh.try_load_record(record).map_err(|e| format!("{e:?}"))?;
    let [w, h] = student.l1.weight.val().dims();
    if (w, h) != (card.window, hidden) {
        return Err(format!("weights are {w}x{h}, the card says {}x{hidden}", card.window));
    }
    Ok(student)
}

/// Loads a teacher from `dir/<name>.{bpk,json}`.
pub fn load_teacher(dir: &Path, name: &str) -> Result<(Teacher, ModelCard), ModelError> {
    let (bpk, json) = paths(dir, name);
    let card = read_card(&json)?;
    check_kind(&card, &json, "teacher-cnn")?;
    let bytes = std::fs::read(&bpk).map_err(|source| ModelError::Io { path: bpk.clone(), source })?;
    let bytes = unpack(&card, bytes).map_err(|message| ModelError::Weights { path: bpk.clone(), message })?;
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| ModelError::Weights { path: bpk.clone(), message: format!("{e:?}") })?;
    let teacher = Teacher::new(card.window, &device())
        .try_load_record(record)
        .map_err(|e| ModelError::Weights { path: bpk, message: format!("{e:?}") })?;
    Ok((teacher, card))
}

/// Quantizes a student's weights to int8 (symmetric, per-tensor min-max calibration).
pub fn quantize(student: &Student) -> Student {
    let device = device();
    let scheme =
        device.settings().quantization.scheme.with_value(QuantValue::Q8S).with_store(QuantStore::Native);
    let mut quantizer = Quantizer::new(Calibration::MinMax, scheme);
    student.clone().quantize_weights(&mut quantizer)
}

/// Loads a student as the engine's scorer (weights exported, dequantized once).
pub fn load_scorer(dir: &Path, name: &str) -> Result<StudentScorer, ModelError> {
    let (student, card) = load_student(dir, name)?;
    Ok(StudentScorer {
        mlp: PlainMlp::from_student(&student),
        threshold: card.threshold,
        name: card.name,
        calibration: card.calibration,
    })
}

/// The default model shipped in the binary (`models/artifacts/student-int8`).
pub fn default_scorer() -> Result<StudentScorer, String> {
    let card: ModelCard = serde_json::from_str(DEFAULT_CARD).map_err(|e| e.to_string())?;
    let student = student_from_bytes(&card, DEFAULT_WEIGHTS.to_vec())?;
    Ok(StudentScorer {
        mlp: PlainMlp::from_student(&student),
        threshold: card.threshold,
        name: card.name,
        calibration: card.calibration,
    })
}

/// The default model's card and weights, as shipped (for version hashes).
pub fn default_model_files() -> (&'static str, &'static [u8]) {
    (DEFAULT_CARD, DEFAULT_WEIGHTS)
}

const DEFAULT_CARD: &str = include_str!("../../artifacts/student-int8.json");
const DEFAULT_WEIGHTS: &[u8] = include_bytes!("../../artifacts/student-int8.bpk");
