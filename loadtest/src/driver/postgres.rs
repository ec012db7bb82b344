//! The PostgreSQL driver, for the comparison: a table of `(id text PRIMARY KEY, data jsonb)`
//! driven through tokio-postgres with statements prepared once per connection, as an
//! application drives it: reads by primary key, updates of the whole document, loading by
//! multi-row inserts. Records are the same JSON text the document drivers send.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use futures::future::BoxFuture;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Statement};

use super::{Connector, Driver, OpError, OpResult};

/// Makes PostgreSQL drivers for one server.
pub struct PostgresConnector {
    /// A connection string or URL (`postgresql://postgres@127.0.0.1:5432/postgres`).
    pub target: String,
    /// The table holding the records.
    pub table: String,
}

impl PostgresConnector {
    /// Opens one connection, its driving task spawned on the runtime.
    async fn client(&self) -> anyhow::Result<Client> {
        anyhow::ensure!(
            !self.table.is_empty()
                && self
                    .table
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "table name {:?}: use lowercase letters, digits and _",
            self.table
        );
        // tokio-postgres sets TCP_NODELAY on its sockets itself.
        let (client, connection) = tokio_postgres::connect(&self.target, NoTls).await?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; a failed operation
            // reports the error.
            let _ = connection.await;
        });
        Ok(client)
    }
}

impl Connector for PostgresConnector {
    fn prepare(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, data jsonb NOT NULL)",
                    self.table
                ))
                .await?;
            Ok(())
        })
    }

    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let t = &self.table;
            let read = client
                .prepare(&format!("SELECT data FROM {t} WHERE id = $1"))
                .await?;
            let update = client
                .prepare(&format!("UPDATE {t} SET data = $2 WHERE id = $1"))
                .await?;
            let insert = client
                .prepare(&format!("INSERT INTO {t} (id, data) VALUES ($1, $2)"))
                .await?;
            let scan = client
                .prepare(&format!(
                    "SELECT id, data FROM {t} WHERE id >= $1 ORDER BY id LIMIT $2"
                ))
                .await?;
            // A batch is one statement, so one transaction and one commit: the rows come as
            // two arrays, which `unnest` pairs up. A load may run twice over the same keys,
            // so an existing record is overwritten.
            let insert_batch = client
                .prepare(&format!(
                    "INSERT INTO {t} (id, data) \
                     SELECT id, data::jsonb FROM unnest($1::text[], $2::text[]) AS r(id, data) \
                     ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data"
                ))
                .await?;
            Ok(Box::new(Postgres {
                client,
                read,
                update,
                insert,
                scan,
                insert_batch,
            }) as Box<dyn Driver>)
        })
    }

    fn max_batch(&self) -> usize {
        500
    }
}

/// One connection with its prepared statements.
struct Postgres {
    client: Client,
    read: Statement,
    update: Statement,
    insert: Statement,
    scan: Statement,
    insert_batch: Statement,
}

/// A record's JSON text as a `jsonb` parameter, sent in jsonb's binary format (a version
/// byte, 1, then the text). Cheaper for the client than the `with-serde_json-1` feature,
/// which would parse every record into a `serde_json::Value` and print it again, and no
/// more work for the server than `$2::text::jsonb`: either way the server parses the text
/// once. It also keeps the statements as plain as an application's.
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

/// A failed statement: `pg_<SQLSTATE>` for an error the server sent (`pg_23505` is a
/// duplicate key), `transport` for a lost connection.
fn pg_error(e: tokio_postgres::Error) -> OpError {
    match e.code() {
        Some(state) => OpError::new(format!("pg_{}", state.code()), e.to_string()),
        None => OpError::transport(e),
    }
}

impl Driver for Postgres {
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            match self
                .client
                .query_opt(&self.read, &[&key])
                .await
                .map_err(pg_error)?
            {
                Some(_) => Ok(()),
                None => Err(OpError::new("not_found", key)),
            }
        })
    }

    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let changed = self
                .client
                .execute(&self.update, &[&key, &JsonText(record)])
                .await
                .map_err(pg_error)?;
            if changed == 0 {
                return Err(OpError::new("not_found", key));
            }
            Ok(())
        })
    }

    fn insert<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.client
                .execute(&self.insert, &[&key, &JsonText(record)])
                .await
                .map_err(pg_error)?;
            Ok(())
        })
    }

    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let limit = count as i64;
            self.client
                .query(&self.scan, &[&start, &limit])
                .await
                .map_err(pg_error)?;
            Ok(())
        })
    }

    fn insert_batch<'a>(&'a self, records: &'a [(String, String)]) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let ids: Vec<&str> = records.iter().map(|r| r.0.as_str()).collect();
            let docs: Vec<&str> = records.iter().map(|r| r.1.as_str()).collect();
            self.client
                .execute(&self.insert_batch, &[&ids, &docs])
                .await
                .map_err(pg_error)?;
            Ok(())
        })
    }
}
