//! The control operations on who may do what: tokens added or revoked, and project or repository
//! grants given or dropped behind the operator's back.

use super::{
    SimError,
    seed::Permission,
    state::{State, Token},
};

impl State {
    /// A personal token without a permission cap.
    pub fn add_token(&mut self, user: &str, token: &str) -> Result<(), SimError> {
        let uid = self.user_id(user).ok_or_else(|| SimError::NoSuchUser(user.to_owned()))?;
        if token.is_empty() {
            return Err(SimError::InvalidToken);
        }
        if self.tokens.contains_key(token) {
            return Err(SimError::TokenInUse);
        }
        let name = format!("simulator-{}", self.next_token_number);
        self.next_token_number += 1;
        self.tokens.insert(token.to_owned(), Token { user: uid, name, cap: None });
        Ok(())
    }

    /// Whether a token was there to remove.
    pub fn revoke_token(&mut self, token: &str) -> bool {
        self.tokens.remove(token).is_some()
    }

    /// Grants `user` a project permission, or drops its grant (`None`).
    pub fn set_project_permission(
        &mut self,
        key: &str,
        user: &str,
        permission: Option<Permission>,
    ) -> Result<(), SimError> {
        if let Some(p) = permission
            && !p.is_project()
        {
            return Err(SimError::WrongPermissionKind(format!("{} is not a project permission", p.as_str())));
        }
        let uid = self.user_id(user).ok_or_else(|| SimError::NoSuchUser(user.to_owned()))?;
        let project =
            self.projects.get_mut(&Self::project_key(key)).ok_or_else(|| SimError::NoSuchProject(key.to_owned()))?;
        match permission {
            Some(p) => project.permissions.insert(uid, p.level()),
            None => project.permissions.remove(&uid),
        };
        Ok(())
    }

    /// Grants `user` a repository permission, or drops its grant (`None`). A project grant still
    /// applies to the repository.
    pub fn set_repository_permission(
        &mut self,
        key: &str,
        slug: &str,
        user: &str,
        permission: Option<Permission>,
    ) -> Result<(), SimError> {
        if let Some(p) = permission
            && p.is_project()
        {
            return Err(SimError::WrongPermissionKind(format!("{} is not a repository permission", p.as_str())));
        }
        let uid = self.user_id(user).ok_or_else(|| SimError::NoSuchUser(user.to_owned()))?;
        let repo = self.repo_or_err(key, slug)?;
        match permission {
            Some(p) => repo.permissions.insert(uid, p.level()),
            None => repo.permissions.remove(&uid),
        };
        Ok(())
    }
}
