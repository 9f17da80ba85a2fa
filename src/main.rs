//! The `pake` binary: parse arguments, run the command, print errors, exit.

use clap::Parser;

fn main() {
    // A closed pipe must not kill pake half way through a deploy (a write to
    // a dropped API connection, or `pake deploy | head`): SIGPIPE is ignored,
    // writes report EPIPE, and output to a closed stdout is dropped quietly
    // (pake::output::out) while the run finishes or rolls back its work.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let cli = pake::cli::Cli::parse();
    init_tracing(cli.global.verbose);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let json = matches!(
        cli.global.output,
        pake::output::Format::Json | pake::output::Format::Sarif
    );
    let code = match rt.block_on(pake::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if json {
                // Machines get a parseable error on stdout as well as the text on stderr.
                pake::output::out_line(
                    serde_json::json!({"error": {"message": e.message, "object": e.object, "fix": e.fix, "exitCode": e.kind.code()}}).to_string(),
                );
            }
            pake::output::err_line(format!("error: {e}"));
            e.kind
        }
    };
    if std::env::var_os("PAKE_API_STATS").is_some() {
        pake::output::err_line(format!(
            "pake: {} API requests",
            pake::kube::API_REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
        ));
        let retried = pake::kube::retry::RETRIES.load(std::sync::atomic::Ordering::Relaxed);
        if retried > 0 {
            pake::output::err_line(format!("pake: {retried} retried after a transient error"));
        }
    }
    std::process::exit(code.code());
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("pake={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
