//! The `sensorflow` command.

mod cli;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};
use sensorflow::simulate::{labels_path_for, simulate, Format};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("sensorflow: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => {
            let config = args.into_config()?;
            let summary = sensorflow::run(&config)?;
            if config.summary {
                eprint!("{summary}");
            }
            Ok(())
        }
        Command::Simulate(args) => {
            let sim = args.sim_config();
            let labels = args.labels.clone().unwrap_or_else(|| labels_path_for(&args.out));
            let written = simulate(&sim, &args.out, Format::from_path(&args.out), &labels, args.events)?;
            eprintln!(
                "wrote {} events to {} and {} labelled anomalies to {}",
                written.events,
                args.out.display(),
                written.labels.len(),
                written.labels_path.display()
            );
            Ok(())
        }
    }
}
