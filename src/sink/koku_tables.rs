//! koku's tables around the summary, filled in the unit's transaction before its rows: the
//! month's report period (koku@768be82535f8e75523d966b4797e954ad054b52f,
//! `masu/processor/ocp/ocp_report_parquet_processor.py` `create_bill`) and the cluster, its
//! nodes, volume claims and projects (`masu/database/ocp_report_db_accessor.py`
//! `populate_cluster_table`, `populate_node_table`, `populate_pvc_table`,
//! `populate_project_table`). Each table is written only where the schema has it; a failed
//! unit rolls all of it back with its rows.
//!
//! koku does this row by row through Django; here each table takes a statement or two over
//! arrays of the inventory's rows, with koku's matching rules: a new row only where koku's
//! `filter(...).first()` finds none, and the updates koku makes to the row it finds.

use serde::Serialize;
use tokio_postgres::Transaction;
use tracing::info;

use super::{qualified, quote_ident, table_exists};
use crate::error::{Error, Result};
use crate::reference::{Inventory, NodeRole, RolesAfterWrite};
use crate::unit::{ClusterIdentity, UnitOfWork};

/// What a write fills besides the summary rows (`sink::replace_unit`).
#[derive(Debug, Clone, Copy)]
pub struct KokuTables<'a> {
    pub inventory: &'a Inventory,
    /// Filled with the node roles once the nodes are written, for the unallocated rows.
    pub roles: &'a RolesAfterWrite,
}

/// What filling koku's tables did, for the run report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KokuTablesOutcome {
    /// The report period this run found or created for the summary rows (`None` when the schema
    /// has no such table, or the run knew its id before it started).
    pub report_period_id: Option<i32>,
    pub report_period_created: bool,
    pub clusters_created: u64,
    pub nodes_created: u64,
    pub nodes_updated: u64,
    pub pvcs_created: u64,
    pub pvcs_updated: u64,
    pub projects_created: u64,
}

/// Creates the unit's report period when missing, then writes the cluster, nodes, claims and
/// projects, and hands the node roles to the summary.
pub(super) async fn fill(
    tx: &Transaction<'_>,
    unit: &UnitOfWork,
    identity: &ClusterIdentity,
    tables: KokuTables<'_>,
) -> Result<KokuTablesOutcome> {
    let schema_q = quote_ident(&unit.schema);
    let mut outcome = KokuTablesOutcome::default();
    if identity.report_period_id.is_none() && table_exists(tx, &unit.schema, PERIODS).await? {
        let (id, created) = report_period(tx, &schema_q, unit, identity).await?;
        (outcome.report_period_id, outcome.report_period_created) = (Some(id), created);
    }
    if !table_exists(tx, &unit.schema, CLUSTERS).await? {
        return Ok(outcome);
    }
    // Runs of other months of the same source write the same cluster's rows: one at a time,
    // or both would create the rows neither sees yet.
    let key = super::advisory_key(&format!("costagg/cluster/{}/{}", unit.schema, unit.source));
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
        .await
        .map_err(Error::database("lock the source's cluster rows"))?;
    let (cluster, created) = cluster(tx, &schema_q, unit, identity).await?;
    outcome.clusters_created = u64::from(created);
    let inventory = tables.inventory;
    if table_exists(tx, &unit.schema, NODES).await? {
        (outcome.nodes_created, outcome.nodes_updated) = nodes(tx, &schema_q, cluster, inventory).await?;
        tables.roles.set(node_roles(tx, &schema_q).await?);
    }
    if table_exists(tx, &unit.schema, PVCS).await? {
        (outcome.pvcs_created, outcome.pvcs_updated) = pvcs(tx, &schema_q, cluster, inventory).await?;
    }
    if table_exists(tx, &unit.schema, PROJECTS).await? {
        outcome.projects_created = projects(tx, &schema_q, cluster, inventory).await?;
    }
    let o = &outcome;
    info!(
        report_period_id = ?o.report_period_id, report_period_created = o.report_period_created,
        clusters_created = o.clusters_created, nodes_created = o.nodes_created,
        nodes_updated = o.nodes_updated, pvcs_created = o.pvcs_created, pvcs_updated = o.pvcs_updated,
        projects_created = o.projects_created, "koku's tables around the summary written"
    );
    Ok(outcome)
}

const PERIODS: &str = "reporting_ocpusagereportperiod";
const CLUSTERS: &str = "reporting_ocp_clusters";
const NODES: &str = "reporting_ocp_nodes";
const PVCS: &str = "reporting_ocp_pvcs";
const PROJECTS: &str = "reporting_ocp_projects";

/// The unit's report period id, and whether this run created the row: koku's `create_bill`
/// (`get_or_create` on the cluster id, the month's bounds at midnight UTC and the source).
/// Called when the run found no row before it started (else its identity holds the id, or
/// the flags gave one); a row another run created since is used as it is.
async fn report_period(
    tx: &Transaction<'_>,
    schema_q: &str,
    unit: &UnitOfWork,
    identity: &ClusterIdentity,
) -> Result<(i32, bool)> {
    let table = qualified(schema_q, PERIODS);
    let found = tx
        .query_opt(
            &format!(
                "SELECT id FROM {table} WHERE provider_id = $1 \
                 AND (report_period_start AT TIME ZONE 'UTC')::date = $2 ORDER BY id DESC LIMIT 1"
            ),
            &[&unit.source, &unit.month.first_day()],
        )
        .await
        .map_err(Error::database("read the report period"))?;
    if let Some(row) = found {
        return Ok((row.get(0), false));
    }
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO {table} (cluster_id, cluster_alias, report_period_start, report_period_end, provider_id) \
                 VALUES ($1, $2, $3::date::timestamp AT TIME ZONE 'UTC', $4::date::timestamp AT TIME ZONE 'UTC', $5) \
                 RETURNING id"
            ),
            &[
                &identity.cluster_id,
                &identity.cluster_alias,
                &unit.month.first_day(),
                &unit.month.next().first_day(),
                &unit.source,
            ],
        )
        .await
        .map_err(Error::database("create the report period"))?;
    let id: i32 = row.get(0);
    info!(report_period_id = id, "created the month's report period");
    Ok((id, true))
}

/// The source's cluster row (its uuid), and whether it was created: koku's
/// `populate_cluster_table`. Several rows for the source: those with another alias go (with
/// their nodes, claims and projects, as Django's cascade does). Then the first row by uuid is
/// the cluster, its alias updated when it differs; none: a row is created.
async fn cluster(
    tx: &Transaction<'_>,
    schema_q: &str,
    unit: &UnitOfWork,
    identity: &ClusterIdentity,
) -> Result<(uuid::Uuid, bool)> {
    let table = qualified(schema_q, CLUSTERS);
    let alias = &identity.cluster_alias;
    let db = |e| Error::database("write the cluster row")(e);
    let count: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE provider_id = $1"),
            &[&unit.source],
        )
        .await
        .map_err(&db)?
        .get(0);
    if count > 1 {
        let others =
            format!("SELECT uuid FROM {table} WHERE provider_id = $1 AND cluster_alias IS DISTINCT FROM $2");
        for child in [NODES, PVCS, PROJECTS] {
            if table_exists(tx, &unit.schema, child).await? {
                let sql = format!(
                    "DELETE FROM {} WHERE cluster_id IN ({others})",
                    qualified(schema_q, child)
                );
                tx.execute(&sql, &[&unit.source, alias]).await.map_err(&db)?;
            }
        }
        let sql = format!("DELETE FROM {table} WHERE uuid IN ({others})");
        tx.execute(&sql, &[&unit.source, alias]).await.map_err(&db)?;
    }
    let first = tx
        .query_opt(
            &format!("SELECT uuid, cluster_alias FROM {table} WHERE provider_id = $1 ORDER BY uuid LIMIT 1"),
            &[&unit.source],
        )
        .await
        .map_err(&db)?;
    if let Some(row) = first {
        let (uuid, current): (uuid::Uuid, Option<String>) = (row.get(0), row.get(1));
        if current.as_ref() != Some(alias) {
            let sql = format!("UPDATE {table} SET cluster_alias = $2 WHERE uuid = $1");
            tx.execute(&sql, &[&uuid, alias]).await.map_err(&db)?;
        }
        return Ok((uuid, false));
    }
    let sql = format!(
        "INSERT INTO {table} (uuid, cluster_id, cluster_alias, provider_id) \
         VALUES (gen_random_uuid(), $1, $2, $3) RETURNING uuid"
    );
    let row = tx
        .query_one(&sql, &[&identity.cluster_id, alias, &unit.source])
        .await
        .map_err(&db)?;
    Ok((row.get(0), true))
}

/// koku's `populate_node_table`: per node row, the first existing row (by uuid) with the same
/// node, resource id, capacity and cluster gets role and architecture when either is empty;
/// without one, a row is created. Returns the rows created and those changed (koku saves the
/// row even when the values are the same; such a save is not counted). The capacity is compared as koku's Django field stores it:
/// rounded to 2 decimals.
async fn nodes(
    tx: &Transaction<'_>,
    schema_q: &str,
    cluster: uuid::Uuid,
    inventory: &Inventory,
) -> Result<(u64, u64)> {
    let table = qualified(schema_q, NODES);
    let rows = &inventory.nodes;
    let node: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    let resource_id: Vec<Option<&str>> = rows.iter().map(|r| r.resource_id.as_deref()).collect();
    let cores: Vec<Option<f64>> = rows.iter().map(|r| r.node_capacity_cpu_cores).collect();
    let role: Vec<&str> = rows.iter().map(|r| r.node_role.as_str()).collect();
    let arch: Vec<Option<&str>> = rows.iter().map(|r| r.architecture.as_deref()).collect();
    let input = "SELECT node, resource_id, round(cores::numeric, 2) AS cores, role, arch \
                 FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[]) \
                 AS i(node, resource_id, cores, role, arch)";
    let same = "n.node = i.node AND n.resource_id IS NOT DISTINCT FROM i.resource_id \
                AND n.node_capacity_cpu_cores IS NOT DISTINCT FROM i.cores AND n.cluster_id = $6";
    let update = format!(
        "UPDATE {table} AS t SET node_role = f.role, architecture = f.arch \
         FROM (SELECT DISTINCT ON (i.node, i.resource_id, i.cores) n.uuid, i.role, i.arch \
               FROM ({input}) AS i JOIN {table} AS n ON {same} \
               ORDER BY i.node, i.resource_id, i.cores, n.uuid) AS f \
         WHERE t.uuid = f.uuid AND (coalesce(t.node_role, '') = '' OR coalesce(t.architecture, '') = '') \
             AND (t.node_role, t.architecture) IS DISTINCT FROM (f.role, f.arch)"
    );
    let insert = format!(
        "INSERT INTO {table} (uuid, node, resource_id, node_capacity_cpu_cores, node_role, architecture, cluster_id) \
         SELECT gen_random_uuid(), i.node, i.resource_id, i.cores, i.role, i.arch, $6 FROM ({input}) AS i \
         WHERE NOT EXISTS (SELECT 1 FROM {table} AS n WHERE {same})"
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&node, &resource_id, &cores, &role, &arch, &cluster];
    let db = |e| Error::database("write the node rows")(e);
    let updated = tx.execute(&update, &params).await.map_err(&db)?;
    let created = tx.execute(&insert, &params).await.map_err(&db)?;
    Ok((created, updated))
}

/// koku's `populate_pvc_table`: a claim with a row for its (volume, claim, cluster) gets the
/// handle when its own is empty; one without is created.
async fn pvcs(
    tx: &Transaction<'_>,
    schema_q: &str,
    cluster: uuid::Uuid,
    inventory: &Inventory,
) -> Result<(u64, u64)> {
    let table = qualified(schema_q, PVCS);
    let rows = &inventory.pvcs;
    let volume: Vec<&str> = rows.iter().map(|r| r.persistent_volume.as_str()).collect();
    let claim: Vec<&str> = rows.iter().map(|r| r.persistent_volume_claim.as_str()).collect();
    let handle: Vec<Option<&str>> = rows.iter().map(|r| r.csi_volume_handle.as_deref()).collect();
    let input = "unnest($1::text[], $2::text[], $3::text[]) AS i(volume, claim, handle)";
    let same = "p.persistent_volume = i.volume AND p.persistent_volume_claim = i.claim AND p.cluster_id = $4";
    let update = format!(
        "UPDATE {table} AS p SET csi_volume_handle = i.handle FROM {input} \
         WHERE {same} AND coalesce(p.csi_volume_handle, '') = '' \
             AND p.csi_volume_handle IS DISTINCT FROM i.handle"
    );
    let insert = format!(
        "INSERT INTO {table} (uuid, persistent_volume, persistent_volume_claim, csi_volume_handle, cluster_id) \
         SELECT gen_random_uuid(), i.volume, i.claim, i.handle, $4 FROM {input} \
         WHERE NOT EXISTS (SELECT 1 FROM {table} AS p WHERE {same})"
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&volume, &claim, &handle, &cluster];
    let db = |e| Error::database("write the claim rows")(e);
    let updated = tx.execute(&update, &params).await.map_err(&db)?;
    let created = tx.execute(&insert, &params).await.map_err(&db)?;
    Ok((created, updated))
}

/// koku's `populate_project_table`: `get_or_create` per (project, cluster).
async fn projects(
    tx: &Transaction<'_>,
    schema_q: &str,
    cluster: uuid::Uuid,
    inventory: &Inventory,
) -> Result<u64> {
    let table = qualified(schema_q, PROJECTS);
    let sql = format!(
        "INSERT INTO {table} (uuid, project, cluster_id) \
         SELECT gen_random_uuid(), i.project, $2 FROM unnest($1::text[]) AS i(project) \
         WHERE NOT EXISTS (SELECT 1 FROM {table} AS p WHERE p.project = i.project AND p.cluster_id = $2)"
    );
    tx.execute(&sql, &[&inventory.projects, &cluster])
        .await
        .map_err(Error::database("write the project rows"))
}

/// The node roles as the unallocated rows read them (`sink::reference`), seen by `tx`.
async fn node_roles(tx: &Transaction<'_>, schema_q: &str) -> Result<Vec<NodeRole>> {
    let sql = format!(
        "SELECT node, resource_id, node_role FROM {} \
         WHERE node IS NOT NULL AND resource_id IS NOT NULL AND node_role IS NOT NULL",
        qualified(schema_q, NODES)
    );
    let rows = tx
        .query(&sql, &[])
        .await
        .map_err(Error::database("read node roles"))?;
    Ok(rows
        .iter()
        .map(|r| NodeRole {
            node: r.get(0),
            resource_id: r.get(1),
            node_role: r.get(2),
        })
        .collect())
}
