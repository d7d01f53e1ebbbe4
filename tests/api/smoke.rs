//! The service starts, reports health, and answers a first check.

use crate::helpers::*;
use crate::on_every_backend;

async fn grant_then_check_then_revoke(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    app.resource("workspace:ops", None).await;
    app.resource("workflow:w1", Some("workspace:ops")).await;
    assert!(!app.check("alice", "view", "workflow:w1").await);
    let g = app.grant("alice", "viewer", "workspace:ops").await;
    assert!(app.check("alice", "view", "workflow:w1").await);
    assert!(!app.check("alice", "edit", "workflow:w1").await);
    app.revoke(&g.id).await.unwrap();
    assert!(!app.check("alice", "view", "workflow:w1").await);
}

on_every_backend!(grant_then_check_then_revoke);
