//! The unit claim table every sweep process of a deployment shares,
//! `<sweep.state_schema>.costagg_sweep_units`: one row per (org, source, month) with the digests
//! its last successful write read, and the claim a worker holds on it while it works.
//!
//! A claim is a lease: `claimed_by` and `lease_until`, taken only when no live lease holds the
//! row (`FOR UPDATE SKIP LOCKED`, so claimers never queue behind each other), and renewed by
//! its worker every third of the lease while the unit runs. A worker that dies stops renewing;
//! once the lease has passed, any other sweep takes the unit over. The lease decides who
//! works on a unit, not whether its rows are safe: the unit's own advisory lock and its
//! one-transaction replace (`sink::replace_unit`) still do that, so a worker that outlives its
//! lease can only delay the next one, never double the rows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::sink::{ddl_lock_key, qualified, quote_ident, table_exists};
use crate::unit::Month;

pub const CLAIMS_TABLE: &str = "costagg_sweep_units";

fn create_table(schema_q: &str, table_q: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema_q}; \
         CREATE TABLE IF NOT EXISTS {table_q} (
            org text NOT NULL,
            source_uuid uuid NOT NULL,
            month text NOT NULL,
            schema_name text NOT NULL,
            -- the unit's files as the newest sweep listed them
            fingerprint text,
            listed_at timestamptz,
            -- what the last successful write read: its files, koku's enabled keys and cost
            -- categories; the unit is due when either differs from now
            done_fingerprint text,
            done_settings text,
            done_at timestamptz,
            successes integer NOT NULL DEFAULT 0,
            failures integer NOT NULL DEFAULT 0,
            claims integer NOT NULL DEFAULT 0,
            claimed_by text,
            claimed_at timestamptz,
            lease_until timestamptz,
            -- succeeded, failed, interrupted
            last_status text,
            last_exit_code integer,
            last_error text,
            last_finished timestamptz,
            rows_written bigint,
            PRIMARY KEY (org, source_uuid, month)
         )"
    )
}

/// A unit as a sweep wants it written: its key, and the digests a write would record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub org: String,
    pub source: Uuid,
    pub month: Month,
    pub schema: String,
    /// The files' digest from the listing (`fingerprint::of_files`).
    pub fingerprint: String,
    /// The schema's enabled keys and cost categories (`fingerprint::of_settings`).
    pub settings: String,
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This worker holds the unit now.
    Taken,
    /// Another worker holds a live lease (or is taking it at this moment): try again later.
    Held { by: Option<String> },
    /// Written since: by another worker of this sweep, or (with `--force`) before it.
    Done,
    /// Another worker failed it since this sweep started; it is not tried twice in one sweep.
    FailedElsewhere { exit_code: i32, error: String },
}

/// The claim table, for one worker of one sweep.
pub struct Claims {
    client: Client,
    table_q: String,
    /// `claimed_by`: the worker id and a token of this process's own, so that two processes
    /// given one id (a pod's replacement while the old one still runs) never renew or release
    /// each other's claims.
    worker: String,
    lease: Duration,
    force: bool,
    /// The database's clock when this sweep started: `--force` re-summarises what was not
    /// written since, and a failure since is not tried again.
    started: DateTime<Utc>,
}

impl Claims {
    /// Creates the table when missing and notes the database's time.
    pub async fn open(
        client: Client,
        schema: &str,
        worker: &str,
        lease: Duration,
        force: bool,
    ) -> Result<Claims> {
        let schema_q = quote_ident(schema);
        let table_q = qualified(&schema_q, CLAIMS_TABLE);
        if !table_exists(&client, schema, CLAIMS_TABLE).await? {
            // Serialised like every other DDL of costagg's: concurrent CREATEs can fail on the
            // catalog.
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({}); {}; COMMIT",
                    ddl_lock_key(schema),
                    create_table(&schema_q, &table_q)
                ))
                .await
                .map_err(Error::database("create the sweep's claim table"))?;
        }
        let row = client
            .query_one("SELECT now()", &[])
            .await
            .map_err(Error::database("read the database's time"))?;
        Ok(Claims {
            client,
            table_q,
            worker: format!("{worker}#{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            lease,
            force,
            started: row.get(0),
        })
    }

    /// The connection the claims are made on, for the sweep's other reads.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Records the listing's digests and returns, for each unit, whether it is due: never
    /// written, its files or settings changed since its last write, or `--force` and not
    /// written since this sweep started.
    pub async fn listed(&self, units: &[Wanted]) -> Result<Vec<bool>> {
        let orgs: Vec<&str> = units.iter().map(|u| u.org.as_str()).collect();
        let sources: Vec<Uuid> = units.iter().map(|u| u.source).collect();
        let months: Vec<String> = units.iter().map(|u| u.month.to_string()).collect();
        let schemas: Vec<&str> = units.iter().map(|u| u.schema.as_str()).collect();
        let prints: Vec<&str> = units.iter().map(|u| u.fingerprint.as_str()).collect();
        let sql = format!(
            "INSERT INTO {t} AS u (org, source_uuid, month, schema_name, fingerprint, listed_at) \
             SELECT o, s, m, n, f, now() FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[]) \
                 AS l(o, s, m, n, f) \
             ON CONFLICT (org, source_uuid, month) DO UPDATE \
                 SET fingerprint = EXCLUDED.fingerprint, listed_at = now(), schema_name = EXCLUDED.schema_name \
             RETURNING u.org, u.source_uuid, u.month, u.done_fingerprint, u.done_settings, u.done_at",
            t = self.table_q
        );
        let rows = self
            .client
            .query(&sql, &[&orgs, &sources, &months, &schemas, &prints])
            .await
            .map_err(Error::database("record the listed units"))?;
        let mut done = std::collections::HashMap::new();
        for row in rows {
            let key: (String, Uuid, String) = (row.get(0), row.get(1), row.get(2));
            let state: (Option<String>, Option<String>, Option<DateTime<Utc>>) =
                (row.get(3), row.get(4), row.get(5));
            done.insert(key, state);
        }
        Ok(units
            .iter()
            .map(|u| {
                let key = (u.org.clone(), u.source, u.month.to_string());
                let (fingerprint, settings, at) = done.remove(&key).unwrap_or_default();
                self.due(u, fingerprint.as_deref(), settings.as_deref(), at)
            })
            .collect())
    }

    /// The rule `listed` and `claim` share, in Rust here and in SQL there.
    fn due(
        &self,
        u: &Wanted,
        fingerprint: Option<&str>,
        settings: Option<&str>,
        at: Option<DateTime<Utc>>,
    ) -> bool {
        fingerprint != Some(u.fingerprint.as_str())
            || settings != Some(u.settings.as_str())
            || (self.force && at.is_none_or(|at| at < self.started))
    }

    /// Takes the unit when it is still due, no live lease holds it and no other worker failed
    /// it since this sweep started.
    pub async fn claim(&self, u: &Wanted) -> Result<Claim> {
        let sql = format!(
            "WITH free AS ( \
                 SELECT org, source_uuid, month FROM {t} \
                 WHERE org = $1 AND source_uuid = $2 AND month = $3 \
                   AND (lease_until IS NULL OR lease_until < now()) \
                   AND (done_fingerprint IS DISTINCT FROM $4 OR done_settings IS DISTINCT FROM $5 \
                        OR ($6 AND (done_at IS NULL OR done_at < $7))) \
                   AND NOT coalesce(last_status = 'failed' AND last_finished >= $7, false) \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE {t} AS u SET claimed_by = $8, claimed_at = now(), claims = u.claims + 1, \
                 lease_until = now() + $9::float8 * interval '1 second' \
             FROM free WHERE (u.org, u.source_uuid, u.month) = (free.org, free.source_uuid, free.month)",
            t = self.table_q
        );
        let lease = self.lease.as_secs_f64();
        let month = u.month.to_string();
        let taken = self
            .client
            .execute(
                &sql,
                &[
                    &u.org,
                    &u.source,
                    &month,
                    &u.fingerprint,
                    &u.settings,
                    &self.force,
                    &self.started,
                    &self.worker,
                    &lease,
                ],
            )
            .await
            .map_err(Error::database("claim a unit"))?;
        if taken == 1 {
            return Ok(Claim::Taken);
        }
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT done_fingerprint, done_settings, done_at, last_status, last_finished, \
                     last_exit_code, last_error, claimed_by, lease_until > now() \
                     FROM {} WHERE org = $1 AND source_uuid = $2 AND month = $3",
                    self.table_q
                ),
                &[&u.org, &u.source, &month],
            )
            .await
            .map_err(Error::database("read a unit's claim"))?;
        let (fingerprint, settings, at): (Option<String>, Option<String>, Option<DateTime<Utc>>) =
            (row.get(0), row.get(1), row.get(2));
        let (status, finished): (Option<String>, Option<DateTime<Utc>>) = (row.get(3), row.get(4));
        let leased: Option<bool> = row.get(8);
        if leased == Some(true) {
            return Ok(Claim::Held { by: row.get(7) });
        }
        if !self.due(u, fingerprint.as_deref(), settings.as_deref(), at) {
            return Ok(Claim::Done);
        }
        if status.as_deref() == Some("failed") && finished.is_some_and(|f| f >= self.started) {
            return Ok(Claim::FailedElsewhere {
                exit_code: row.get::<_, Option<i32>>(5).unwrap_or(1),
                error: row.get::<_, Option<String>>(6).unwrap_or_default(),
            });
        }
        // Locked by a claimer at this very moment: try again later.
        Ok(Claim::Held { by: row.get(7) })
    }

    /// Extends this worker's lease on the unit; `false` when it no longer holds it (it
    /// outlived its lease and another worker took the unit over).
    pub async fn renew(&self, u: &Wanted) -> Result<bool> {
        let sql = format!(
            "UPDATE {} SET lease_until = now() + $5::float8 * interval '1 second' \
             WHERE org = $1 AND source_uuid = $2 AND month = $3 AND claimed_by = $4",
            self.table_q
        );
        let month = u.month.to_string();
        let lease = self.lease.as_secs_f64();
        let renewed = self
            .client
            .execute(&sql, &[&u.org, &u.source, &month, &self.worker, &lease])
            .await
            .map_err(Error::database("renew a unit's lease"))?;
        Ok(renewed == 1)
    }

    /// Records a committed write with the digests of what it read, and releases the claim
    /// (when it is still this worker's).
    pub async fn succeeded(&self, u: &Wanted, fingerprint: &str, settings: &str, rows: u64) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET done_fingerprint = $5, done_settings = $6, done_at = now(), \
                 successes = successes + 1, rows_written = $7, last_status = 'succeeded', \
                 last_exit_code = 0, last_error = NULL, last_finished = now(), {release} \
             WHERE org = $1 AND source_uuid = $2 AND month = $3",
            self.table_q,
            release = RELEASE
        );
        let month = u.month.to_string();
        self.client
            .execute(
                &sql,
                &[
                    &u.org,
                    &u.source,
                    &month,
                    &self.worker,
                    &fingerprint,
                    &settings,
                    &(rows as i64),
                ],
            )
            .await
            .map_err(Error::database("record a unit's write"))?;
        Ok(())
    }

    /// Records a failed or interrupted run and releases the claim: an interrupted unit is
    /// anyone's at once; a failed one waits for the next sweep.
    pub async fn ended(&self, u: &Wanted, error: &Error) -> Result<()> {
        let status = match error {
            Error::Interrupted { .. } => "interrupted",
            _ => "failed",
        };
        let sql = format!(
            "UPDATE {} SET failures = failures + CASE WHEN $5 = 'failed' THEN 1 ELSE 0 END, \
                 last_status = $5, last_exit_code = $6, last_error = $7, last_finished = now(), {release} \
             WHERE org = $1 AND source_uuid = $2 AND month = $3",
            self.table_q,
            release = RELEASE
        );
        let month = u.month.to_string();
        let (code, text) = (error.exit_code(), error.to_string());
        self.client
            .execute(
                &sql,
                &[&u.org, &u.source, &month, &self.worker, &status, &code, &text],
            )
            .await
            .map_err(Error::database("record a unit's failure"))?;
        Ok(())
    }

    /// The newest successful write of each source among `sources`, for the metrics.
    pub async fn last_successes(
        &self,
        sources: &[(String, Uuid)],
    ) -> Result<Vec<(String, Uuid, DateTime<Utc>)>> {
        let orgs: Vec<&str> = sources.iter().map(|s| s.0.as_str()).collect();
        let uuids: Vec<Uuid> = sources.iter().map(|s| s.1).collect();
        let sql = format!(
            "SELECT u.org, u.source_uuid, max(u.done_at) FROM {} u \
             JOIN unnest($1::text[], $2::uuid[]) AS s(o, id) ON (u.org, u.source_uuid) = (s.o, s.id) \
             WHERE u.done_at IS NOT NULL GROUP BY 1, 2",
            self.table_q
        );
        let rows = self
            .client
            .query(&sql, &[&orgs, &uuids])
            .await
            .map_err(Error::database("read the sources' last writes"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }
}

/// Releases the claim when it is still this worker's (`$4`).
const RELEASE: &str = "claimed_by = CASE WHEN claimed_by = $4 THEN NULL ELSE claimed_by END, \
     lease_until = CASE WHEN claimed_by = $4 THEN NULL ELSE lease_until END";
