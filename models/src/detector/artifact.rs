//! Model files: Burn's burnpack record (`<name>.bpk`) plus a JSON card (`<name>.json`) with
//! everything needed to use the weights: window length, normalisation, threshold, how the
//! model was trained and what it measured at export.

use std::path::{Path, PathBuf};

use burn::module::{Module, Quantizer};
use burn::tensor::quantization::{Calibration, QuantStore, QuantValue};
use sensorflow_operators::{LikelihoodParams, CLIP, HORIZON};
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
    /// A file is missing or cannot be read or written. A retry can help: the file may still
    /// be being copied in or written (a model reload tries again at its next check), or the
    /// cause may be transient (a full disk since cleared).
    #[error("model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The card is not valid. A retry cannot help until the card is replaced.
    #[error("model card {path}: {source}")]
    Card {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: CardError,
    },
    /// The weights file is corrupt or does not fit the card. A retry cannot help until the
    /// files are replaced.
    #[error("model weights {path}: {source}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: WeightsError,
    },
    /// The card built into the binary does not parse: a build defect, a retry cannot help.
    #[error(transparent)]
    BuiltinCard(serde_json::Error),
    /// The weights built into the binary do not load: a build defect, a retry cannot help.
    #[error(transparent)]
    BuiltinWeights(WeightsError),
}

/// What is wrong with a model card.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// Not JSON, or not the fields of a card (or, writing, not serialisable).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A card format this build does not read.
    #[error("format {found} is not supported (expected {FORMAT})")]
    Format {
        /// The card's format.
        found: u32,
    },
    /// Inputs normalised otherwise than the engine normalises them.
    #[error("normalisation {found:?} differs from the engine's")]
    Normalization {
        /// The card's normalisation.
        found: Normalization,
    },
    /// Window length or threshold out of range.
    #[error("window must be 24..=4096 and threshold in [0, 1]")]
    Range {
        /// The card's window.
        window: usize,
        /// The card's threshold.
        threshold: f32,
    },
    /// A calibration setting out of its range.
    #[error("{0}")]
    Calibration(String),
    /// Another kind of model than the one asked for.
    #[error("kind {found:?} is not {expected:?}")]
    Kind {
        /// The card's kind.
        found: String,
        /// The kind asked for.
        expected: &'static str,
    },
}

/// What is wrong with a weights file (or with the card's description of it).
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The card says zlib, the bytes are not zlib data.
    #[error("the weights are not valid zlib data ({status})")]
    Zlib {
        /// The inflater's status.
        status: String,
    },
    /// A compression this build does not read.
    #[error("compression {0:?} is not supported (expected zlib)")]
    Compression(String),
    /// A student card without its hidden size.
    #[error("student card has no hidden size")]
    NoHidden,
    /// A hidden size the plain path cannot run.
    #[error("hidden size {0} is outside 1..={max}", max = super::inference::MAX_HIDDEN)]
    Hidden(usize),
    /// Burn cannot encode or decode the record, or it does not fit the network.
    #[error("{0}")]
    Record(String),
    /// The first layer's shape differs from the card's window and hidden size.
    #[error("weights are {rows}x{cols}, the card says {window}x{hidden}")]
    Shape {
        /// Rows of the first layer (inputs).
        rows: usize,
        /// Columns of the first layer (hidden units).
        cols: usize,
        /// The card's window.
        window: usize,
        /// The card's hidden size.
        hidden: usize,
    },
}

impl WeightsError {
    fn record(e: impl std::fmt::Debug) -> Self {
        WeightsError::Record(format!("{e:?}"))
    }
}

/// How inputs are normalised (must match the engine's [`sensorflow_operators::OnlineNormalizer`]).
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
    pub calibration: Option<LikelihoodParams>,
}

/// Largest weights file, decompressed, a card may describe.
const MAX_WEIGHTS: usize = 256 << 20;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io { path: path.into(), source }
}

fn card_err(path: &Path) -> impl FnOnce(CardError) -> ModelError + '_ {
    move |source| ModelError::Card { path: path.into(), source }
}

fn weights_err(path: &Path) -> impl FnOnce(WeightsError) -> ModelError + '_ {
    move |source| ModelError::Weights { path: path.into(), source }
}

/// The burnpack record of a weights file as the card describes it (compressed or not).
fn record(card: &ModelCard, bytes: Vec<u8>) -> Result<burn::store::ModuleRecord, WeightsError> {
    let bytes = match card.compression.as_deref() {
        None => bytes,
        Some("zlib") => miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&bytes, MAX_WEIGHTS)
            .map_err(|e| WeightsError::Zlib { status: format!("{:?}", e.status) })?,
        Some(other) => return Err(WeightsError::Compression(other.to_string())),
    };
    burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(WeightsError::record)
}

fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.bpk")), dir.join(format!("{name}.json")))
}

fn write_card(path: &Path, card: &ModelCard) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(card).map_err(|e| card_err(path)(e.into()))?;
    std::fs::write(path, text).map_err(io(path))
}

/// Reads and checks a card.
pub fn read_card(path: &Path) -> Result<ModelCard, ModelError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    parse_card(&text, path)
}

/// Parses and checks a card's text (`path` names it in errors).
pub fn parse_card(text: &str, path: &Path) -> Result<ModelCard, ModelError> {
    let card: ModelCard = serde_json::from_str(text).map_err(|e| card_err(path)(e.into()))?;
    let bad = |e: CardError| Err(card_err(path)(e));
    if card.format != FORMAT {
        return bad(CardError::Format { found: card.format });
    }
    if card.normalization != Normalization::default() {
        return bad(CardError::Normalization { found: card.normalization });
    }
    if !((24..=4096).contains(&card.window) && (0.0..=1.0).contains(&card.threshold)) {
        return bad(CardError::Range { window: card.window, threshold: card.threshold });
    }
    if let Some(c) = &card.calibration {
        c.validate().map_err(|e| card_err(path)(CardError::Calibration(e)))?;
    }
    Ok(card)
}

/// Saves a module (teacher, or student in f32 or int8) and its card as
/// `dir/<card.name>.{bpk,json}`; returns the size of the weights file in bytes.
pub fn save_model<M: Module + Clone>(dir: &Path, model: &M, card: &ModelCard) -> Result<u64, ModelError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (bpk, json) = paths(dir, &card.name);
    let plain =
        model.clone().into_record().into_bytes().map_err(|e| weights_err(&bpk)(WeightsError::record(e)))?;
    let bytes = match card.compression.as_deref() {
        Some("zlib") => miniz_oxide::deflate::compress_to_vec_zlib(&plain, 10),
        _ => plain.to_vec(),
    };
    std::fs::write(&bpk, bytes).map_err(io(&bpk))?;
    write_card(&json, card)?;
    std::fs::metadata(&bpk).map(|m| m.len()).map_err(io(&bpk))
}

/// [`save_model`] for a student.
pub fn save_student(dir: &Path, student: &Student, card: &ModelCard) -> Result<u64, ModelError> {
    save_model(dir, student, card)
}

/// The card and weights bytes of `dir/<name>`, the card checked and of `kind`.
fn read_files(
    dir: &Path,
    name: &str,
    kind: &'static str,
) -> Result<(ModelCard, Vec<u8>, PathBuf), ModelError> {
    let (bpk, json) = paths(dir, name);
    let card = read_card(&json)?;
    if card.kind != kind {
        return Err(card_err(&json)(CardError::Kind { found: card.kind, expected: kind }));
    }
    let bytes = std::fs::read(&bpk).map_err(io(&bpk))?;
    Ok((card, bytes, bpk))
}

/// Loads a student from `dir/<name>.{bpk,json}`.
pub fn load_student(dir: &Path, name: &str) -> Result<(Student, ModelCard), ModelError> {
    let (card, bytes, bpk) = read_files(dir, name, "student-mlp")?;
    let student = student_from_bytes(&card, bytes).map_err(weights_err(&bpk))?;
    Ok((student, card))
}

/// Builds a student from a card and burnpack bytes.
pub fn student_from_bytes(card: &ModelCard, bytes: Vec<u8>) -> Result<Student, WeightsError> {
    let hidden = card.hidden.ok_or(WeightsError::NoHidden)?;
    if hidden == 0 || hidden > super::inference::MAX_HIDDEN {
        return Err(WeightsError::Hidden(hidden));
    }
    let record = record(card, bytes)?;
    let fresh = Student::new(card.window, hidden, &device());
    let fresh = if card.quantization.is_some() { quantize(&fresh) } else { fresh };
    let student = fresh.try_load_record(record).map_err(WeightsError::record)?;
    let [rows, cols] = student.l1.weight.val().dims();
    if (rows, cols) != (card.window, hidden) {
        return Err(WeightsError::Shape { rows, cols, window: card.window, hidden });
    }
    Ok(student)
}

/// Loads a teacher from `dir/<name>.{bpk,json}`.
pub fn load_teacher(dir: &Path, name: &str) -> Result<(Teacher, ModelCard), ModelError> {
    let (card, bytes, bpk) = read_files(dir, name, "teacher-cnn")?;
    let teacher = record(&card, bytes)
        .and_then(|r| Teacher::new(card.window, &device()).try_load_record(r).map_err(WeightsError::record))
        .map_err(weights_err(&bpk))?;
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

fn scorer(student: &Student, card: ModelCard) -> StudentScorer {
    StudentScorer {
        mlp: PlainMlp::from_student(student),
        threshold: card.threshold,
        name: card.name,
        calibration: card.calibration,
    }
}

/// Loads a student as the engine's scorer (weights exported, dequantized once).
pub fn load_scorer(dir: &Path, name: &str) -> Result<StudentScorer, ModelError> {
    let (student, card) = load_student(dir, name)?;
    Ok(scorer(&student, card))
}

/// The default model shipped in the binary (`models/artifacts/student-int8`).
pub fn default_scorer() -> Result<StudentScorer, ModelError> {
    let card: ModelCard = serde_json::from_str(DEFAULT_CARD).map_err(ModelError::BuiltinCard)?;
    let student = student_from_bytes(&card, DEFAULT_WEIGHTS.to_vec()).map_err(ModelError::BuiltinWeights)?;
    Ok(scorer(&student, card))
}

/// The default model's card and weights, as shipped (for version hashes).
pub fn default_model_files() -> (&'static str, &'static [u8]) {
    (DEFAULT_CARD, DEFAULT_WEIGHTS)
}

const DEFAULT_CARD: &str = include_str!("../../artifacts/student-int8.json");
const DEFAULT_WEIGHTS: &[u8] = include_bytes!("../../artifacts/student-int8.bpk");
