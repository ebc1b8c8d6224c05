//! koku's reference tables read from a schema: each `None` when the schema lacks the table,
//! so the caller can fall back to the config (`KokuReference::or`).

use tokio_postgres::Client;

use super::{quote_ident, table_exists};
use crate::error::{Error, Result};
use crate::reference::{CostCategoryPattern, EnabledKeys, KokuReference, NodeRole, ReportPeriod};
use crate::unit::UnitOfWork;

/// Every reference table of koku's that the summary reads, from `schema`.
pub async fn read(client: &Client, schema: &str) -> Result<KokuReference> {
    Ok(KokuReference {
        enabled_keys: enabled_tag_keys(client, schema).await?,
        cost_categories: cost_categories(client, schema).await?,
        node_roles: node_roles(client, schema).await?,
    })
}

/// The enabled OCP tag keys from koku's `reporting_enabledtagkeys`, or `None` when the table is
/// absent from the schema.
async fn enabled_tag_keys(client: &Client, schema: &str) -> Result<Option<EnabledKeys>> {
    let sql = "SELECT key FROM {}.reporting_enabledtagkeys WHERE enabled = true AND provider_type = 'OCP'";
    let rows = read_reference(
        client,
        schema,
        "reporting_enabledtagkeys",
        "read enabled tag keys",
        sql,
        &[],
    )
    .await?;
    Ok(rows.map(|rows| EnabledKeys::from_enabled(rows.iter().map(|r| r.get::<_, String>(0)))))
}

/// Cost-category namespace patterns from koku's `reporting_ocp_cost_category_namespace`, or
/// `None` when the table is absent.
async fn cost_categories(client: &Client, schema: &str) -> Result<Option<Vec<CostCategoryPattern>>> {
    let sql = "SELECT namespace, cost_category_id FROM {}.reporting_ocp_cost_category_namespace";
    let rows = read_reference(
        client,
        schema,
        "reporting_ocp_cost_category_namespace",
        "read cost categories",
        sql,
        &[],
    )
    .await?;
    Ok(rows.map(|rows| {
        rows.iter()
            .map(|r| CostCategoryPattern {
                namespace: r.get(0),
                cost_category_id: r.get(1),
            })
            .collect()
    }))
}

/// Node roles from koku's `reporting_ocp_nodes`, or `None` when the table is absent. Rows
/// without a node, resource id or role can match nothing in koku's join and are left out.
async fn node_roles(client: &Client, schema: &str) -> Result<Option<Vec<NodeRole>>> {
    let sql = "SELECT node, resource_id, node_role FROM {}.reporting_ocp_nodes \
               WHERE node IS NOT NULL AND resource_id IS NOT NULL AND node_role IS NOT NULL";
    let rows = read_reference(client, schema, "reporting_ocp_nodes", "read node roles", sql, &[]).await?;
    Ok(rows.map(|rows| {
        rows.iter()
            .map(|r| NodeRole {
                node: r.get(0),
                resource_id: r.get(1),
                node_role: r.get(2),
            })
            .collect()
    }))
}

/// koku's report period row for a source and month (`reporting_ocpusagereportperiod`), or
/// `None` when the table or the row is absent. With several rows (one per cluster id) the
/// newest is taken.
pub async fn report_period(client: &Client, unit: &UnitOfWork) -> Result<Option<ReportPeriod>> {
    let sql = "SELECT id, cluster_id, cluster_alias FROM {}.reporting_ocpusagereportperiod \
               WHERE provider_id = $1 AND (report_period_start AT TIME ZONE 'UTC')::date = $2 \
               ORDER BY id DESC LIMIT 1";
    let month_start = unit.month.first_day();
    let rows = read_reference(
        client,
        &unit.schema,
        "reporting_ocpusagereportperiod",
        "read the report period",
        sql,
        &[&unit.source, &month_start],
    )
    .await?;
    Ok(rows
        .and_then(|rows| rows.into_iter().next())
        .map(|r| ReportPeriod {
            id: r.get(0),
            cluster_id: r.get(1),
            cluster_alias: r.get(2),
        }))
}

/// The rows of `sql` (with `{}` for the quoted schema) and `params`, or `None` when `table`
/// is absent.
async fn read_reference(
    client: &Client,
    schema: &str,
    table: &str,
    stage: &'static str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<Vec<tokio_postgres::Row>>> {
    if !table_exists(client, schema, table).await? {
        return Ok(None);
    }
    let rows = client
        .query(&sql.replace("{}", &quote_ident(schema)), params)
        .await
        .map_err(Error::database(stage))?;
    Ok(Some(rows))
}
