//! `overcast serve`: loads the config, sets up logging, opens the core and runs the server
//! until SIGINT or SIGTERM.

use anyhow::{anyhow, Context};
use overcast_core::config::{Config, LogFormat};
use overcast_core::{Bootstrap, Core};
use overcast_server::Server;
use std::path::PathBuf;

pub struct ServeArgs {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub log_format: Option<LogFormat>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    return_large_buffers_to_the_system();
    let path = Config::locate(args.config.as_deref());
    let providers = overcast::providers();
    let mut config = Config::load(path.as_deref(), &providers).map_err(|e| anyhow!("{e}"))?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    init_logging(config.log_format);
    match &path {
        Some(path) => tracing::info!(config = %path.display(), "config loaded"),
        None => tracing::info!("no config file: running on defaults"),
    }
    let admin_secret = std::env::var("OVERCAST_ADMIN_TOKEN").ok();
    let (core, bootstrap) = Core::open(config, &providers, admin_secret)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    match bootstrap {
        Bootstrap::WrittenTo(path) => tracing::info!(
            path = %path.display(),
            "created the first admin token; it is in this file, readable by you only"
        ),
        Bootstrap::FromEnvironment => {
            tracing::info!("created the first admin token from OVERCAST_ADMIN_TOKEN")
        }
        Bootstrap::Existing => {}
    }
    let server = Server::bind(core).await.map_err(|e| anyhow!("{e}"))?;
    let scheme = if server.is_tls() { "https" } else { "http" };
    tracing::info!(
        url = %format!("{scheme}://{}", server.local_addr()),
        version = env!("CARGO_PKG_VERSION"),
        "overcast is listening"
    );
    if let Some(addr) = server.ec2_addr() {
        tracing::info!(url = %format!("http://{addr}"), "the EC2 Query API is listening");
    }
    server
        .run(shutdown_signal())
        .await
        .context("the server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OVERCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

/// Object transfers hold a few 8 MiB parts at a time. glibc would serve such buffers from
/// its heaps once one has been freed (its mmap threshold rises), where freed memory is not
/// returned to the system and fragments across threads; a fixed threshold keeps every
/// buffer of 1 MiB or more in its own mapping, returned when freed, so the server's memory
/// follows what it holds.
fn return_large_buffers_to_the_system() {
    // SAFETY: mallopt only changes allocator tuning; it is called before the server
    // allocates its transfer buffers and is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
