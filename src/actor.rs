//! Who is acting: the `Actor` every service call carries — what they may
//! see, and who and where they are for the audit trail — and staff roles.
//! Plain data, used by `audit` and `auth` alike.

pub use crate::vocabulary::Role;

/// Which cases an actor may see and change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Admins, the command line and scheduled jobs.
    Everything,
    /// An advocate: only the cases assigned to them.
    OwnCases(i32),
    /// A patient or care partner in the portal: their one case, and only
    /// through the portal's own operations (staff operations look for a
    /// staff member and find none).
    OneCase(i32),
}

/// Who is acting, for access checks and the audit trail.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i32>,
    /// Shown in the audit log: the user's email, or `system:<what>`.
    pub label: String,
    pub scope: Scope,
    pub ip: Option<String>,
}

impl Actor {
    pub fn user(user_id: i32, email: &str, role: Role, ip: Option<String>) -> Self {
        let scope = match role {
            Role::Admin => Scope::Everything,
            Role::Advocate => Scope::OwnCases(user_id),
        };
        Self { user_id: Some(user_id), label: email.to_string(), scope, ip }
    }

    /// The command line or a job acting on the operator's behalf.
    pub fn system(what: &str) -> Self {
        Self { user_id: None, label: format!("system:{what}"), scope: Scope::Everything, ip: None }
    }

    /// Someone who has not shown who they are. They may see nothing: no
    /// user has id 0.
    pub fn anonymous(ip: Option<String>) -> Self {
        Self { user_id: None, label: "anonymous".into(), scope: Scope::OwnCases(0), ip }
    }

    /// The patient or one of their care partners, signed in to the portal
    /// for `case_id`; `label` says which in the audit trail.
    pub fn portal(case_id: i32, label: String, ip: Option<String>) -> Self {
        Self { user_id: None, label, scope: Scope::OneCase(case_id), ip }
    }

    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Everything
    }

    pub fn may_see_case(&self, case_id: i32, advocate_id: Option<i32>) -> bool {
        match self.scope {
            Scope::Everything => true,
            Scope::OwnCases(me) => advocate_id == Some(me),
            Scope::OneCase(only) => case_id == only,
        }
    }
}
