//! [`Placement`]: the leases and nodes in Postgres. Each operation is one statement, so its
//! condition and its effect are one atomic step; Postgres's `now()` is the only clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, postgres::PgPoolOptions};
use tdsync_protocol::ids::{ProjectId, TenantId};

use crate::{
    error::PlacementError,
    model::{Claim, Lease, NodeId, NodeInfo, Owner},
};

/// The tables, made once per database (under an advisory lock: several nodes start at once).
const SCHEMA: &str = "
SELECT pg_advisory_xact_lock(hashtext('tdsync_placement_schema'));
CREATE TABLE IF NOT EXISTS tdsync_nodes (
    node_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    draining BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS tdsync_placements (
    tenant_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, project_id)
);
CREATE INDEX IF NOT EXISTS tdsync_placements_by_node ON tdsync_placements (node_id);
ALTER TABLE tdsync_placements ADD COLUMN IF NOT EXISTS moving_to TEXT;
";

/// Leases and nodes in one Postgres database (the control plane's, in a cluster). Cheap to
/// clone.
#[derive(Clone)]
pub struct Placement {
    pool: PgPool,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Placement {
    /// Connects and makes the tables if they are missing.
    pub async fn connect(url: &str) -> Result<Placement, PlacementError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Placement { pool })
    }

    /// Registers `node` (or updates its URL), with a heartbeat now.
    pub async fn register(&self, node: &NodeId, url: &str) -> Result<(), PlacementError> {
        sqlx::query(
            "INSERT INTO tdsync_nodes (node_id, url, heartbeat_at) VALUES ($1, $2, now()) \
             ON CONFLICT (node_id) DO UPDATE SET url = EXCLUDED.url, heartbeat_at = now()",
        )
        .bind(node.as_str())
        .bind(url)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn heartbeat(&self, node: &NodeId) -> Result<(), PlacementError> {
        sqlx::query("UPDATE tdsync_nodes SET heartbeat_at = now() WHERE node_id = $1")
            .bind(node.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A draining node is given no new projects.
    pub async fn set_draining(&self, node: &NodeId, draining: bool) -> Result<(), PlacementError> {
        sqlx::query("UPDATE tdsync_nodes SET draining = $2 WHERE node_id = $1")
            .bind(node.as_str())
            .bind(draining)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every registered node, with its live leases.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, PlacementError> {
        let rows = sqlx::query(
            "SELECT n.node_id, n.url, n.draining, \
                    EXTRACT(EPOCH FROM now() - n.heartbeat_at)::float8 AS age, \
                    count(p.project_id) AS projects \
             FROM tdsync_nodes n \
             LEFT JOIN tdsync_placements p ON p.node_id = n.node_id AND p.lease_until > now() \
             GROUP BY n.node_id ORDER BY n.node_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeInfo {
                    id: NodeId::parse(r.try_get("node_id")?)?,
                    url: r.try_get("url")?,
                    heartbeat_age_secs: r.try_get("age")?,
                    draining: r.try_get("draining")?,
                    projects: r.try_get("projects")?,
                })
            })
            .collect()
    }

    /// Claims `project` for `node` for `lease`: granted when nobody holds it, when its lease ran
    /// out (the epoch goes up: a new owner), or when `node` holds it already (renewed, same
    /// epoch); else who holds it.
    pub async fn claim(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        node: &NodeId,
        lease: Duration,
    ) -> Result<Claim, PlacementError> {
        let granted = sqlx::query(
            "INSERT INTO tdsync_placements AS p (tenant_id, project_id, node_id, epoch, lease_until) \
             VALUES ($1, $2, $3, 1, now() + $4 * interval '1 millisecond') \
             ON CONFLICT (tenant_id, project_id) DO UPDATE SET \
                 node_id = EXCLUDED.node_id, \
                 epoch = CASE WHEN p.node_id = EXCLUDED.node_id AND p.lease_until > now() \
                              THEN p.epoch ELSE p.epoch + 1 END, \
                 lease_until = EXCLUDED.lease_until, \
                 moving_to = CASE WHEN p.node_id = EXCLUDED.node_id AND p.lease_until > now() \
                                  THEN p.moving_to END \
             WHERE (p.lease_until > now() AND p.node_id = EXCLUDED.node_id) \
                OR (p.lease_until <= now() \
                    AND (p.moving_to IS NULL OR p.moving_to = EXCLUDED.node_id)) \
             RETURNING epoch, lease_until",
        )
        .bind(tenant.as_str())
        .bind(project.as_str())
        .bind(node.as_str())
        .bind(millis(lease))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = granted {
            return Ok(Claim::Granted(Lease {
                tenant: tenant.clone(),
                project: project.clone(),
                node: node.clone(),
                epoch: row.try_get("epoch")?,
                until: row.try_get("lease_until")?,
            }));
        }
        // A free project on its way to another node is that node's.
        let held = sqlx::query(
            "SELECT CASE WHEN lease_until <= now() AND moving_to IS NOT NULL THEN moving_to \
                         ELSE node_id END AS node_id, lease_until \
             FROM tdsync_placements WHERE tenant_id = $1 AND project_id = $2",
        )
        .bind(tenant.as_str())
        .bind(project.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(Claim::Held {
            by: NodeId::parse(held.try_get("node_id")?)?,
            until: held.try_get("lease_until")?,
        })
    }

    /// Extends `lease` by `duration` from now if it is still the holder's and has not run out;
    /// None when it was lost (the holder must stop writing the project at once).
    pub async fn renew(
        &self,
        lease: &Lease,
        duration: Duration,
    ) -> Result<Option<Lease>, PlacementError> {
        let row = sqlx::query(
            "UPDATE tdsync_placements SET lease_until = now() + $5 * interval '1 millisecond' \
             WHERE tenant_id = $1 AND project_id = $2 AND node_id = $3 AND epoch = $4 \
               AND lease_until > now() \
             RETURNING lease_until",
        )
        .bind(lease.tenant.as_str())
        .bind(lease.project.as_str())
        .bind(lease.node.as_str())
        .bind(lease.epoch)
        .bind(millis(duration))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Lease {
                until: r.try_get::<DateTime<Utc>, _>("lease_until")?,
                ..lease.clone()
            })
        })
        .transpose()
    }

    /// Renews every live lease `node` holds, in one statement; the leases it still holds.
    pub async fn renew_all(
        &self,
        node: &NodeId,
        duration: Duration,
    ) -> Result<Vec<Lease>, PlacementError> {
        let rows = sqlx::query(
            "UPDATE tdsync_placements SET lease_until = now() + $2 * interval '1 millisecond' \
             WHERE node_id = $1 AND lease_until > now() \
             RETURNING tenant_id, project_id, epoch, lease_until",
        )
        .bind(node.as_str())
        .bind(millis(duration))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| lease_of(r, node.clone())).collect()
    }

    /// Gives `lease` up now (a graceful move): the next claim by anyone is granted, with the
    /// epoch raised. False when it was no longer the holder's.
    pub async fn release(&self, lease: &Lease) -> Result<bool, PlacementError> {
        let done = sqlx::query(
            "UPDATE tdsync_placements SET lease_until = now() \
             WHERE tenant_id = $1 AND project_id = $2 AND node_id = $3 AND epoch = $4 \
               AND lease_until > now()",
        )
        .bind(lease.tenant.as_str())
        .bind(lease.project.as_str())
        .bind(lease.node.as_str())
        .bind(lease.epoch)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Asks `project`'s owner to hand it to `to` (`tdsync cluster move`): the owner ships and
    /// releases it, and only `to` may claim it then. False when the project was never placed.
    pub async fn request_move(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        to: &NodeId,
    ) -> Result<bool, PlacementError> {
        let done = sqlx::query(
            "UPDATE tdsync_placements SET moving_to = $3 WHERE tenant_id = $1 AND project_id = $2",
        )
        .bind(tenant.as_str())
        .bind(project.as_str())
        .bind(to.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The live leases of `node` that are asked to move elsewhere.
    pub async fn moves_from(&self, node: &NodeId) -> Result<Vec<Lease>, PlacementError> {
        let rows = sqlx::query(
            "SELECT tenant_id, project_id, node_id, epoch, lease_until FROM tdsync_placements \
             WHERE node_id = $1 AND lease_until > now() AND moving_to IS NOT NULL \
               AND moving_to <> node_id",
        )
        .bind(node.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| lease_of(r, node.clone())).collect()
    }

    /// Every placed project: its lease, seconds left on it (negative: expired), and the node it
    /// is moving to.
    pub async fn leases(&self) -> Result<Vec<(Lease, f64, Option<NodeId>)>, PlacementError> {
        let rows = sqlx::query(
            "SELECT tenant_id, project_id, node_id, epoch, lease_until, moving_to, \
                    EXTRACT(EPOCH FROM lease_until - now())::float8 AS left_secs \
             FROM tdsync_placements ORDER BY node_id, tenant_id, project_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let lease = lease_of(r, NodeId::parse(r.try_get("node_id")?)?)?;
                let moving: Option<&str> = r.try_get("moving_to")?;
                Ok((
                    lease,
                    r.try_get("left_secs")?,
                    moving.map(NodeId::parse).transpose()?,
                ))
            })
            .collect()
    }

    /// The project's owner and where to reach it; None when it was never placed.
    pub async fn owner(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
    ) -> Result<Option<Owner>, PlacementError> {
        let row = sqlx::query(
            "SELECT p.tenant_id, p.project_id, p.node_id, p.epoch, p.lease_until, \
                    p.lease_until > now() AS live, n.url, m.url AS moving_to \
             FROM tdsync_placements p JOIN tdsync_nodes n ON n.node_id = p.node_id \
             LEFT JOIN tdsync_nodes m ON m.node_id = p.moving_to \
             WHERE p.tenant_id = $1 AND p.project_id = $2",
        )
        .bind(tenant.as_str())
        .bind(project.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Owner {
                lease: lease_of(&r, NodeId::parse(r.try_get("node_id")?)?)?,
                url: r.try_get("url")?,
                live: r.try_get("live")?,
                moving_to: r.try_get("moving_to")?,
            })
        })
        .transpose()
    }

    /// Projects whose lease ran out (their owner died or gave them up), oldest first, that
    /// `node` may take over (those moving to another node are that node's).
    pub async fn expired(&self, node: &NodeId, limit: i64) -> Result<Vec<Lease>, PlacementError> {
        let rows = sqlx::query(
            "SELECT tenant_id, project_id, node_id, epoch, lease_until FROM tdsync_placements \
             WHERE lease_until <= now() AND (moving_to IS NULL OR moving_to = $2) \
             ORDER BY lease_until LIMIT $1",
        )
        .bind(limit)
        .bind(node.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| lease_of(r, NodeId::parse(r.try_get("node_id")?)?))
            .collect()
    }
}

fn lease_of(row: &sqlx::postgres::PgRow, node: NodeId) -> Result<Lease, PlacementError> {
    let tenant: &str = row.try_get("tenant_id")?;
    let project: &str = row.try_get("project_id")?;
    let bad =
        |e: tdsync_protocol::ids::BadId| PlacementError::Postgres(sqlx::Error::Decode(Box::new(e)));
    Ok(Lease {
        tenant: TenantId::parse(tenant).map_err(bad)?,
        project: ProjectId::parse(project).map_err(bad)?,
        node,
        epoch: row.try_get("epoch")?,
        until: row.try_get("lease_until")?,
    })
}
