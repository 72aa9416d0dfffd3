//! `kelvin-ingest`: the ingest service alone (PostgreSQL and Redis in production).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kelvin_server::run_service(kelvin_ingest::SERVICE_NAME, &[kelvin_ingest::mount]).await
}
