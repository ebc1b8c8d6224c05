//! koku's own tables (`tests/fixtures/koku_schema.sql`) in a test database's org schema: the
//! summary table as koku's migrations leave it, the tables around it and their foreign keys,
//! which PostgreSQL checks at COMMIT.

use tokio_postgres::Client;

/// koku's DDL for one org schema, with `{schema}` where the schema's name goes.
pub const KOKU_SCHEMA_SQL: &str = include_str!("../fixtures/koku_schema.sql");

/// `schema` as a quoted identifier.
fn quoted(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// Creates the schema (if missing) and koku's tables in it, with the Platform cost category and
/// its namespaces that koku's migrations put in every schema. One implicit transaction: on
/// failure nothing is left behind, and the test panics with PostgreSQL's message.
pub async fn create_koku_schema(client: &Client, schema: &str) {
    let schema_q = quoted(schema);
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema_q};\n{}",
        KOKU_SCHEMA_SQL.replace("{schema}", &schema_q)
    );
    client.batch_execute(&sql).await.unwrap_or_else(|e| {
        panic!("cannot create koku's tables (tests/fixtures/koku_schema.sql) in schema {schema}: {e}")
    });
}

/// Adds `source` to the schema's `reporting_tenant_api_provider`, koku's per-schema row of a
/// source, when missing. The report period's and the cluster's `provider_id` reference it: a
/// run that writes either for a source without this row fails at COMMIT.
pub async fn insert_tenant_provider(client: &Client, schema: &str, source: &str) {
    let sql = format!(
        "INSERT INTO {}.reporting_tenant_api_provider (uuid, name, type) \
         VALUES ($1::text::uuid, $1::text, 'OCP') ON CONFLICT (uuid) DO NOTHING",
        quoted(schema)
    );
    client.execute(&sql, &[&source]).await.unwrap_or_else(|e| {
        panic!("cannot add source {source} to {schema}.reporting_tenant_api_provider: {e}")
    });
}

/// Inserts the report period of `source`'s `month` (YYYY-MM) for a cluster, as koku's
/// `create_bill` does (the month's bounds at midnight UTC), adding the source's
/// `reporting_tenant_api_provider` row first when missing, and returns the period's id.
pub async fn insert_report_period(
    client: &Client,
    schema: &str,
    source: &str,
    cluster_id: &str,
    cluster_alias: &str,
    month: &str,
) -> i32 {
    insert_tenant_provider(client, schema, source).await;
    let sql = format!(
        "INSERT INTO {}.reporting_ocpusagereportperiod \
         (cluster_id, cluster_alias, report_period_start, report_period_end, provider_id) \
         SELECT $1, $2, s AT TIME ZONE 'UTC', (s + interval '1 month') AT TIME ZONE 'UTC', $3::text::uuid \
         FROM (SELECT ($4::text || '-01')::date::timestamp AS s) AS m RETURNING id",
        quoted(schema)
    );
    client
        .query_one(&sql, &[&cluster_id, &cluster_alias, &source, &month])
        .await
        .unwrap_or_else(|e| {
            panic!("cannot insert the {month} report period of source {source} in {schema}: {e}")
        })
        .get(0)
}
