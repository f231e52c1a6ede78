//! The Numenta Anomaly Benchmark (NAB v1.1), reimplemented from its description: finding and
//! reading the corpus (`corpus.rs`), scoring a detector's per-row outputs the way NAB does
//! (`scorer.rs`, where the scoring rules are written down), and NAB's per-row result files
//! (`results.rs`). Everything is re-exported here: `sensorflow_models::nab::score_corpus`.

use std::path::{Path, PathBuf};

mod corpus;
mod results;
mod scorer;

pub use corpus::{
    corpus_files, discover_root, load_profiles, load_windows, merge_windows, read_data_file, CorpusFile,
    Windows, NAB_BESIDE, NAB_DIR_VAR,
};
pub use results::{read_results, write_results};
pub use scorer::{
    probation_length, score_corpus, score_files, standard_profiles, CostMatrix, Counts, FileScore, Profile,
    ProfileScore, ThresholdScore, PROBATION_FRACTION,
};

/// What can go wrong reading or scoring NAB data.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// A file could not be read or written. A retry can help when the cause is transient (a
    /// file being copied in, a full disk since cleared); a missing corpus stays missing.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's contents are not what NAB specifies. A retry cannot help: the file must be
    /// fixed.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NabError + '_ {
    move |source| NabError::Io { path: path.to_path_buf(), source }
}

fn format_err(path: &Path, message: impl Into<String>) -> NabError {
    NabError::Format { path: path.to_path_buf(), message: message.into() }
}

/// One detector's output for one data file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileOutput {
    /// Data file, `category/file.csv`.
    pub file: String,
    /// Row timestamps, epoch ms (in file order; NAB files may step back).
    pub timestamps: Vec<u64>,
    /// The raw values (written back into result files).
    pub values: Vec<f64>,
    /// Anomaly score per row, in [0, 1].
    pub scores: Vec<f64>,
}
