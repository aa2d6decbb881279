//! The server: binding the configured address (with TLS when configured), serving the
//! families until a shutdown signal, then letting in-flight requests finish.

use overcast_core::Core;
use overcast_types::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::{app, ec2_app};

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A bound, not yet running server.
pub struct Server {
    listener: std::net::TcpListener,
    /// `[compat.ec2] listen`: the EC2 Query API alone, over plain HTTP.
    ec2_listener: Option<std::net::TcpListener>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    core: Arc<Core>,
}

impl Server {
    /// Binds the configured address (port 0 picks a free one) and loads TLS if configured.
    pub async fn bind(core: Arc<Core>) -> Result<Server, Error> {
        let config = core.config();
        let listener = listen("listen", &config.listen)?;
        let ec2_listener = match &config.compat.ec2.listen {
            Some(address) => Some(listen("compat.ec2.listen", address)?),
            None => None,
        };
        let tls = match &config.tls {
            None => None,
            Some(tls) => {
                // Two TLS crypto backends are linked in (the HTTP client brings its own);
                // say which one the server uses. Installing twice is harmless.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                let loaded =
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                        .await
                        .map_err(|e| {
                            Error::invalid(
                                "tls",
                                format!("cannot load the certificate or key: {e}"),
                            )
                        })?;
                Some(loaded)
            }
        };
        Ok(Server {
            listener,
            ec2_listener,
            tls,
            core,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The EC2 listener's address, when one is configured.
    pub fn ec2_addr(&self) -> Option<SocketAddr> {
        self.ec2_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to 30 s).
    /// Running operations stay recorded and resume at the next start.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = app(self.core.clone());
        let handle = axum_server::Handle::new();
        let signal = handle.clone();
        let ec2_handle = axum_server::Handle::new();
        if let Some(listener) = self.ec2_listener {
            let service = ec2_app(self.core.clone()).into_make_service();
            let handle = ec2_handle.clone();
            tokio::spawn(async move {
                let served = axum_server::from_tcp(listener)
                    .handle(handle)
                    .serve(service)
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the EC2 listener stopped");
                }
            });
        }
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            signal.graceful_shutdown(Some(SHUTDOWN_GRACE));
            ec2_handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        });
        let service = app.into_make_service();
        let served = match self.tls {
            Some(tls) => {
                axum_server::from_tcp_rustls(self.listener, tls)
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::from_tcp(self.listener)
                    .handle(handle)
                    .serve(service)
                    .await
            }
        };
        self.core.close().await;
        served
    }
}

/// Binds an address of the config (`field` names it in errors); port 0 picks a free one.
fn listen(field: &str, address: &str) -> Result<std::net::TcpListener, Error> {
    let addr: SocketAddr = address
        .parse()
        .map_err(|_| Error::invalid(field, format!("`{address}` is not an address")))?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::invalid(field, format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok(listener)
}
