//! Schema migrations, one per file, applied in order by `portcullis migrate`
//! (and by `serve` unless `--no-migrate`).

use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_changes;
mod m20261123_000003_resource_path_index;
mod m20261123_000004_member_index;
mod m20261123_000005_requests;
mod m20261123_000006_audit_by_revision;
mod m20261202_000007_tenant_actions;
mod m20261202_000008_tenant_tombstones;
mod m20261203_000009_conditions;
mod m20261203_000010_invitation_expiry;
mod m20261203_000011_implied_actions;
mod m20261203_000012_restricted_resources;
mod m20261203_000013_resource_links;
mod m20261203_000014_grant_last_used;

/// Every migration of the schema.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_changes::Migration),
            Box::new(m20261123_000003_resource_path_index::Migration),
            Box::new(m20261123_000004_member_index::Migration),
            Box::new(m20261123_000005_requests::Migration),
            Box::new(m20261123_000006_audit_by_revision::Migration),
            Box::new(m20261202_000007_tenant_actions::Migration),
            Box::new(m20261202_000008_tenant_tombstones::Migration),
            Box::new(m20261203_000009_conditions::Migration),
            Box::new(m20261203_000010_invitation_expiry::Migration),
            Box::new(m20261203_000011_implied_actions::Migration),
            Box::new(m20261203_000012_restricted_resources::Migration),
            Box::new(m20261203_000013_resource_links::Migration),
            Box::new(m20261203_000014_grant_last_used::Migration),
        ]
    }
}
