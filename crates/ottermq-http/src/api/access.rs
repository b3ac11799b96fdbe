//! Who may see what in the management API, by user tag, as RabbitMQ 3.10's `rabbit_mgmt_util`
//! decides it:
//!
//! - a user without `management`, `policymaker`, `monitoring` or `administrator` gets 401 for
//!   everything (checked once in `auth.rs`);
//! - a URL naming a vhost (`/api/queues/{vhost}/...`, writes included) needs the
//!   administrator tag or a permission entry in that vhost (`is_authorized_vhost`), else 401
//!   "User not authorised to access virtual host"; an unknown vhost is 404;
//! - lists show the vhosts a user may see (`filter_vhost`): all of them for `monitoring` and
//!   `administrator`, those with a permission entry for `management` and `policymaker`;
//! - connections and channels show the user's own unless it is `monitoring` or
//!   `administrator` (`filter_user`);
//! - users, vhost writes, permissions and definitions need `administrator` (`admin.rs`).
//!
//! What a user may then do inside an allowed vhost is its AMQP permissions, as for AMQP.

use super::admin::is_admin;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::http::StatusCode;
use ottermq_broker::vhost::VHost;
use std::sync::Arc;

/// `monitoring` or `administrator`: sees every vhost and every user's connections.
pub fn is_monitor(me: &AuthUser) -> bool {
    is_admin(me) || me.tags.iter().any(|t| t == "monitoring")
}

/// Whether `me` may log in to `vhost` (has a permission entry there), RabbitMQ's login vhosts.
fn has_vhost_access(s: &AppState, me: &AuthUser, vhost: &str) -> bool {
    s.broker.users.permission(vhost, &me.name).is_some()
}

/// Whether objects of `vhost` appear in `me`'s lists.
pub fn sees_vhost(s: &AppState, me: &AuthUser, vhost: &str) -> bool {
    is_monitor(me) || has_vhost_access(s, me, vhost)
}

/// Whether `me` sees a connection or channel opened by `owner`.
pub fn sees_user(me: &AuthUser, owner: &str) -> bool {
    is_monitor(me) || me.name == owner
}

/// The vhost a URL names, for a user allowed to use it: 404 when there is no such vhost,
/// 401 when `me` is neither an administrator nor permitted in it.
pub fn vhost_for(s: &AppState, me: &AuthUser, name: &str) -> ApiResult<Arc<VHost>> {
    let v = find_vhost(s, name)?;
    if is_admin(me) || has_vhost_access(s, me, name) {
        Ok(v)
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: "User not authorised to access virtual host".into(),
        })
    }
}

/// The vhost a URL names, without an access check (administrator-only endpoints).
pub fn find_vhost(s: &AppState, name: &str) -> ApiResult<Arc<VHost>> {
    s.broker
        .vhost(name)
        .ok_or_else(|| ApiError::not_found(format!("vhost '{name}' not found")))
}
