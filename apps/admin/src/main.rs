//! `chargeflow-admin`: wiring only (arguments, settings, output, exit code). What each command
//! does is in the library.

use std::{io::Write, process::ExitCode};

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = admin::Cli::parse();
    let result = match secrets::load_settings().await {
        Ok(settings) => admin::run(cli, &settings).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(output) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(output.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", admin::one_line(&error));
            ExitCode::FAILURE
        }
    }
}
