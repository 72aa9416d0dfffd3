//! `kelvin-scoring`: the scoring service alone (PostgreSQL and Redis in production).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kelvin_server::run_service(kelvin_scoring::SERVICE_NAME, &[kelvin_scoring::mount]).await
}
