//! pake: deploy a service to Kubernetes the hardened way, and prove each step.
//!
//! The crate is a library plus a thin binary so integration tests can drive the
//! same code paths the CLI uses. Layers, top to bottom (see ARCHITECTURE.md):
//!
//! - [`cli`]: argument parsing only, one file per subcommand.
//! - [`workflow`]: plans, the executor, rollback, lock, history, waits.
//! - [`steps`]: one module per step of the deployment security guide.
//! - [`checks`]: pure functions from objects to findings (audit, verify, build).
//! - [`kube`] and [`docker`]: thin adapters over kube-rs and bollard.
//!
//! Note: our adapter module is called `kube`, like the kube-rs crate. Inside
//! this crate the extern crate is always written `::kube` and our adapter
//! `crate::kube`, so the two never get confused.

pub mod checks;
pub mod cli;
pub mod config;
pub mod docker;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod kube;
pub mod membudget;
pub mod output;
pub mod preflight;
pub mod redact;
pub mod render;
pub mod report;
pub mod secret;
pub mod steps;
pub mod workflow;

pub use error::{Error, ExitCode, Result};
