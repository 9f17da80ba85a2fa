//! The `pake` binary: parse arguments, run the command, print errors, exit.

/// The system allocator, with a memory budget for template rendering (src/membudget.rs).
#[global_allocator]
static ALLOC: pake::membudget::Counting = pake::membudget::Counting;

fn main() {
    pake::kube::stats::start();
    // A closed pipe must not kill pake half way through a deploy (a write to
    // a dropped API connection, or `pake deploy | head`): SIGPIPE is ignored,
    // writes report EPIPE, and output to a closed stdout is dropped quietly
    // (pake::output::out) while the run finishes or rolls back its work.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let cli = pake::cli::parse();
    let color = cli.global.color;
    init_tracing(cli.global.verbose, color);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let format = cli.global.output;
    let code = match rt.block_on(pake::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if matches!(
                format,
                pake::output::Format::Json | pake::output::Format::Yaml
            ) {
                // Machines get a parseable error on stdout as well as the text on stderr.
                let doc = serde_json::json!({"error": {"message": e.message, "object": e.object, "fix": e.fix, "exitCode": e.kind.code()}});
                pake::output::print_machine(format, &pake::output::with_header("Error", &doc));
            }
            pake::output::err_line(format!("error: {e}"));
            let text = match &e.fix {
                Some(f) => format!("{}\nfix: {f}", e.message),
                None => e.message.clone(),
            };
            pake::report::github::annotate(
                pake::report::github::Level::Error,
                "pake",
                &pake::report::github::Location::default(),
                &text,
            );
            e.kind
        }
    };
    if std::env::var_os("PAKE_API_STATS").is_some() {
        pake::output::err_line(format!(
            "pake: {} API requests",
            pake::kube::API_REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
        ));
        for (verb, resource, n) in pake::kube::stats::by_kind() {
            pake::output::err_line(format!("pake: api {verb} {resource} {n}"));
        }
        let retried = pake::kube::retry::RETRIES.load(std::sync::atomic::Ordering::Relaxed);
        if retried > 0 {
            pake::output::err_line(format!("pake: {retried} retried after a transient error"));
        }
    }
    std::process::exit(code.code());
}

fn init_tracing(verbose: u8, color: pake::output::ColorChoice) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    // Log lines carry ANSI colour only on a terminal (never in a pipe or a file).
    let ansi = color.enabled(std::io::stderr().is_terminal(), no_color);
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAKE_LOG").unwrap_or_else(|_| {
        // kube's client logs every failed request itself ("failed with error
        // client error (Connect)"), again on each watcher retry; pake reports
        // it once, naming the server and the context. Shown from -vv on.
        let kube = if verbose >= 2 { level } else { "off" };
        tracing_subscriber::EnvFilter::new(format!(
            "pake={level},kube_client={kube},kube_runtime={kube},warn"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}
