//! The `pake` binary: parse arguments, run the command, print errors, exit.

use clap::Parser;

fn main() {
    // Die quietly on a closed pipe (`pake render | head`), like other CLI tools.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
                println!(
                    "{}",
                    serde_json::json!({"error": {"message": e.message, "object": e.object, "fix": e.fix, "exitCode": e.kind.code()}})
                );
            }
            eprintln!("error: {e}");
            e.kind
        }
    };
    if std::env::var_os("PAKE_API_STATS").is_some() {
        eprintln!(
            "pake: {} API requests",
            pake::kube::API_REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
        );
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
