//! The vocabulary of threshold rules: a [`Rule`] and its [`Comparator`], the [`Control`]
//! records that change rules and device metadata while the graph runs, the [`RuleBook`] that
//! evaluates windows against them, and device-name globs. The operator that runs a rule book
//! in a dataflow is [`crate::ApplyRules`].

pub mod book;
pub mod control;
pub mod glob;
pub mod rule;

pub use book::{EarlyCandidate, RuleBook};
pub use control::{Control, DeviceMeta};
pub use glob::glob_match;
pub use rule::{Comparator, Rule, TotalF64};
