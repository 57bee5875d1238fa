//! A throwaway PostgreSQL cluster for one test, on a unix socket in a temporary directory.

use std::{path::PathBuf, time::Duration};

use chatmail_portal::embedded_pg::EmbeddedPostgres;

pub struct TestPostgres {
    server: Option<EmbeddedPostgres>,
    pid_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPostgres {
    pub async fn start() -> TestPostgres {
        let dir = crate::shared_temp_dir();
        let cluster = dir.path().join("cluster");
        let server = EmbeddedPostgres::start(&cluster)
            .await
            .unwrap_or_else(|err| panic!("test PostgreSQL did not start: {err}"));
        TestPostgres {
            server: Some(server),
            pid_file: cluster.join("pgdata/postmaster.pid"),
            _dir: dir,
        }
    }

    /// A `postgres://` URL for the portal's database in this cluster.
    pub fn url(&self) -> String {
        self.server.as_ref().expect("running").url()
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Dropping the server asks PostgreSQL for a fast shutdown; wait until it has
        // removed its pid file so the temporary directory can go with it.
        if self.server.take().is_some() {
            for _ in 0..200 {
                if !self.pid_file.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The newest DNS job once it has finished: (state, summary, last error). Waits up to a
/// minute.
pub async fn finished_dns_job(pool: &sqlx::PgPool) -> (String, Option<String>, Option<String>) {
    for _ in 0..600 {
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT state, summary, last_error FROM dns_jobs ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await
        .expect("read the DNS jobs");
        if let Some(row) = row.filter(|(state, _, _)| state == "done" || state == "failed") {
            return row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the DNS job did not finish within a minute");
}
