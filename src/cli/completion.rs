//! `pake completion SHELL` (clap_complete) and `pake man [--dir DIR]`
//! (clap_mangen): generated from the same definitions as the parser, so they
//! never drift from it.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::Global;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash, zsh, fish, powershell or elvish.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write pake.1 and one page per command (pake-deploy.1, ...) into DIR instead of printing pake.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub async fn completion(_g: &Global, a: CompletionArgs) -> Result<ExitCode> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "pake", &mut std::io::stdout());
    Ok(ExitCode::Ok)
}

pub async fn man(g: &Global, a: ManArgs) -> Result<ExitCode> {
    let cmd = super::Cli::command();
    match a.dir {
        None => {
            let mut out = std::io::stdout();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| Error::failed(format!("cannot write the man page: {e}")))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, &dir)
                .map_err(|e| Error::usage(format!("cannot write into {}: {e}", dir.display())))?;
            let ui = g.ui();
            ui.line(format!(
                "{} man pages in {} (`man -M {} pake`)",
                ui.mark(true),
                dir.display(),
                dir.parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| ".".into())
            ));
        }
    }
    Ok(ExitCode::Ok)
}
