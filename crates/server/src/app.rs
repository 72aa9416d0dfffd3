//! The gRPC server: bind early, mount services, serve until a shutdown signal, drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kelvin_config::ServerSettings;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::admission::Admission;
use crate::call::{CallLayer, Gate};
use crate::tls::Tls;
use crate::{Runtime, StartError, health};

/// What a service crate adds to the server.
pub struct Mount {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    limits: ServerSettings,
}

impl Mount {
    /// Adds a gRPC service (already sized with [`Mount::limits`]) and reports it in health.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Message size limits every mounted service must apply.
    pub fn limits(&self) -> &ServerSettings {
        &self.limits
    }
}

/// A function mounting one service crate's gRPC services.
pub type MountFn = fn(&Arc<Runtime>, &mut Mount);

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    runtime: Arc<Runtime>,
    mount: Mount,
    tls: Option<Tls>,
    /// The plaintext health-only listener (`server.health_listen`).
    health_listener: Option<TcpListener>,
}

impl Application {
    /// Binds the configured address (port 0 picks a free one) and mounts the services.
    pub async fn build(runtime: Arc<Runtime>, mounts: &[MountFn]) -> Result<Self, StartError> {
        let listen = runtime.config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| StartError::Io(format!("cannot listen on {listen}: {e}")))?;
        let local_addr =
            listener.local_addr().map_err(|e| StartError::Io(format!("no local address: {e}")))?;
        let tls = Tls::load(&runtime.config.server.tls)?;
        let health_listener = match runtime.config.server.health_listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|e| {
                StartError::Io(format!("cannot listen on {address} (server.health_listen): {e}"))
            })?),
            None => None,
        };
        let mut mount = Mount {
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            limits: runtime.config.server.clone(),
        };
        for m in mounts {
            m(&runtime, &mut mount);
        }
        Ok(Self { listener, local_addr, runtime, mount, tls, health_listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the plaintext health-only listener listens, when configured.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The names of the mounted gRPC services (as reported by health).
    pub fn service_names(&self) -> &[&'static str] {
        &self.mount.names
    }

    /// Serves until `shutdown` completes, then reports NOT_SERVING, stops accepting, and lets
    /// in-flight calls finish within the configured grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Self { listener, local_addr, runtime, mount, tls, health_listener } = self;
        let Mount { mut routes, names, limits } = mount;

        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &tls {
            builder = builder
                .tls_config(tls.grpc())
                .map_err(|e| StartError::Invalid(format!("server.tls: {e}")))?;
        }
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let initial = health::probe(&runtime.store, runtime.cache.as_ref()).await;
        let store_down = Arc::new(AtomicBool::new(!initial.store));
        health::set_all(&reporter, &names, initial.status()).await;
        let watcher = tokio::spawn(health::watch(
            reporter.clone(),
            names.clone(),
            runtime.store.clone(),
            runtime.cache.clone(),
            Duration::from_millis(limits.health_check_interval_ms.max(100)),
            store_down.clone(),
            initial,
        ));

        fn reflection(
            builder: tonic_reflection::server::Builder<'static>,
        ) -> tonic_reflection::server::Builder<'static> {
            builder
                .register_encoded_file_descriptor_set(kelvin_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc.Status and the error details (BadRequest, RetryInfo, ...) that
                // errors carry: without them grpcurl cannot show why a call was refused.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        }
        let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
            .build_v1()
            .map_err(|e| StartError::Invalid(format!("reflection: {e}")))?;
        let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
            .build_v1alpha()
            .map_err(|e| StartError::Invalid(format!("reflection: {e}")))?;
        // Probes that cannot speak TLS get health alone, in plaintext, on a listener of its own.
        // It answers (NOT_SERVING while draining) until the main server has stopped.
        let health_only = health_listener.map(|listener| {
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(health_service.clone())
                    .serve_with_incoming(TcpIncoming::from(listener)),
            )
        });
        routes.add_service(health_service);
        routes.add_service(reflection_v1);
        routes.add_service(reflection_v1alpha);

        let max_deadline = Duration::from_secs(limits.request_timeout_seconds.max(1));
        let layer = CallLayer::new(Gate {
            verifier: runtime.verifier.clone(),
            store: runtime.store.clone(),
            admission: Admission::new(
                limits.max_concurrent_calls,
                limits.max_concurrent_calls_per_key,
            ),
            store_down,
            max_deadline,
        });
        let stopping = Arc::new(tokio::sync::Notify::new());
        let signal = {
            let runtime_for_signal = runtime.clone();
            let reporter = reporter.clone();
            let names = names.clone();
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
                runtime_for_signal.signal_stopping();
                health::set_all(&reporter, &names, ServingStatus::NotServing).await;
                stopping.notify_one();
            }
        };
        tracing::info!(
            address = %local_addr,
            tls = tls.as_ref().map_or("off", |t| if t.mutual() { "mutual" } else { "on" }),
            services = ?names,
            store = runtime.store.backend(),
            cache = runtime.cache.backend(),
            "serving"
        );
        let server = builder
            // The call layer answers expiry (DEADLINE_EXCEEDED) first; this is a backstop.
            .timeout(max_deadline + Duration::from_secs(1))
            .layer(layer)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                signal,
            );
        tokio::pin!(server);
        let grace = Duration::from_secs(limits.shutdown_grace_seconds);
        let result = tokio::select! {
            result = &mut server => result,
            () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "in-flight calls outlived the grace period");
                Ok(())
            }
        };
        watcher.abort();
        if let Some(health_only) = health_only {
            health_only.abort();
        }
        result.map_err(|e| StartError::Io(format!("server: {e}")))?;
        tracing::info!("stopped");
        Ok(())
    }
}
