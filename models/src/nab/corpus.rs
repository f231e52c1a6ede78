//! The NAB corpus on disk: where it is ([`discover_root`]), its data files ([`corpus_files`],
//! [`read_data_file`]), its labelled windows ([`load_windows`]) and its application profiles
//! ([`load_profiles`]).
//!
//! Layout: `data/<category>/<file>.csv` (`timestamp,value`), `labels/combined_windows.json`,
//! `config/profiles.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sensorflow_operators::timefmt::parse_datetime;
use serde::Deserialize;

use super::scorer::{CostMatrix, Profile};
use super::{format_err, io, NabError};

/// The environment variable that names the NAB corpus root.
pub const NAB_DIR_VAR: &str = "SENSORFLOW_NAB_DIR";

/// Where the corpus is looked for when neither a path nor [`NAB_DIR_VAR`] is given: beside the
/// checkout, relative to the current directory.
pub const NAB_BESIDE: &str = "../shared/datasets/nab";

/// The NAB corpus root: `explicit` if given, else `$SENSORFLOW_NAB_DIR` if set and not empty,
/// else [`NAB_BESIDE`] (relative to the current directory) if it has a `data` folder, else
/// `None`. A path given explicitly or through the variable is returned as it is, so a wrong
/// one fails where the corpus is read instead of silently falling back to another.
pub fn discover_root(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(root) = explicit {
        return Some(root.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(NAB_DIR_VAR).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let beside = PathBuf::from(NAB_BESIDE);
    beside.join("data").is_dir().then_some(beside)
}

/// One file of a two-level `<category>/<file>` tree (the corpus's data, a detector's results).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CorpusFile {
    /// The category folder (`realKnownCause`).
    pub category: String,
    /// The file name with its extension (`nyc_taxi.csv`).
    pub name: String,
    /// The whole path.
    pub path: PathBuf,
}

impl CorpusFile {
    /// `<category>/<file>.csv`: how NAB's labels and results name the file.
    pub fn key(&self) -> String {
        format!("{}/{}", self.category, self.name)
    }

    /// `<category>/<file>` without the extension: the device the engine's NAB source reads the
    /// file as.
    pub fn device(&self) -> String {
        let stem = Path::new(&self.name).file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
        format!("{}/{stem}", self.category)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Every entry of every category folder under `dir`, sorted by category, then name.
pub(super) fn category_files(dir: &Path) -> Result<Vec<CorpusFile>, NabError> {
    let mut files = Vec::new();
    for cat in std::fs::read_dir(dir).map_err(io(dir))? {
        let cat = cat.map_err(io(dir))?.path();
        if !cat.is_dir() {
            continue;
        }
        let category = file_name(&cat);
        for f in std::fs::read_dir(&cat).map_err(io(&cat))? {
            let path = f.map_err(io(&cat))?.path();
            files.push(CorpusFile { category: category.clone(), name: file_name(&path), path });
        }
    }
    files.sort();
    Ok(files)
}

/// Every data file (`<category>/<file>.csv`) of the NAB corpus at `root` (`root/data/…`, or
/// `root/…` when there is no `data` folder), sorted by category, then name. No data file at
/// all is an error.
pub fn corpus_files(root: &Path) -> Result<Vec<CorpusFile>, NabError> {
    let data = if root.join("data").is_dir() { root.join("data") } else { root.to_path_buf() };
    let mut files = category_files(&data)?;
    files.retain(|f| f.path.extension().is_some_and(|x| x == "csv"));
    if files.is_empty() {
        return Err(format_err(&data, "no NAB data files (<category>/<file>.csv) found"));
    }
    Ok(files)
}

/// Reads one NAB data file (`timestamp,value` with a header): timestamps (epoch ms) and values.
pub fn read_data_file(path: &Path) -> Result<(Vec<u64>, Vec<f64>), NabError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || format_err(path, format!("line {}: expected timestamp,value", n + 1));
        let (t, v) = line.split_once(',').ok_or_else(bad)?;
        ts.push(parse_datetime(t).ok_or_else(bad)?);
        vs.push(v.trim().parse::<f64>().map_err(|_| bad())?);
    }
    Ok((ts, vs))
}

/// Reads `config/profiles.json`.
pub fn load_profiles(path: &Path) -> Result<Vec<Profile>, NabError> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "CostMatrix")]
        cost_matrix: CostMatrix,
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let map: BTreeMap<String, Entry> =
        serde_json::from_str(&text).map_err(|e| format_err(path, e.to_string()))?;
    Ok(map.into_iter().map(|(name, e)| Profile { name, costs: e.cost_matrix }).collect())
}

/// Labelled windows per data file (`category/file.csv`), as (start, end) in epoch ms,
/// sorted, with overlapping windows merged.
pub type Windows = BTreeMap<String, Vec<(u64, u64)>>;

/// Reads `labels/combined_windows.json`.
pub fn load_windows(path: &Path) -> Result<Windows, NabError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let raw: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&text).map_err(|e| format_err(path, e.to_string()))?;
    let mut out = Windows::new();
    for (file, list) in raw {
        let mut spans = Vec::new();
        for (a, b) in list {
            let start = parse_datetime(&a).ok_or_else(|| format_err(path, format!("bad timestamp {a:?}")))?;
            let end = parse_datetime(&b).ok_or_else(|| format_err(path, format!("bad timestamp {b:?}")))?;
            if end < start {
                return Err(format_err(path, format!("window {a} .. {b} ends before it starts")));
            }
            spans.push((start, end));
        }
        out.insert(file, merge_windows(spans));
    }
    Ok(out)
}

/// Sorts windows and merges overlapping ones (NAB's labels never overlap; merging makes a
/// detection in an overlap count once instead of depending on iteration order).
pub fn merge_windows(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_root_wins() {
        let explicit = Path::new("/somewhere/nab");
        assert_eq!(discover_root(Some(explicit)), Some(explicit.to_path_buf()));
    }

    #[test]
    fn corpus_files_walk_categories_in_order_and_name_keys_and_devices() {
        let root = tempfile::tempdir().unwrap();
        for (cat, name) in [("b", "z.csv"), ("a", "y.csv"), ("a", "x.csv"), ("a", "notes.txt")] {
            std::fs::create_dir_all(root.path().join("data").join(cat)).unwrap();
            std::fs::write(root.path().join("data").join(cat).join(name), "timestamp,value\n").unwrap();
        }
        std::fs::write(root.path().join("data/README.md"), "not a category").unwrap();
        let files = corpus_files(root.path()).unwrap();
        let keys: Vec<String> = files.iter().map(CorpusFile::key).collect();
        assert_eq!(keys, ["a/x.csv", "a/y.csv", "b/z.csv"]);
        assert_eq!(files[0].device(), "a/x");
        assert_eq!(files[0].path, root.path().join("data/a/x.csv"));
        // The same tree without its `data` folder level.
        let files = corpus_files(&root.path().join("data")).unwrap();
        assert_eq!(files.len(), 3);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(corpus_files(empty.path()), Err(NabError::Format { .. })));
    }
}
