//! The I/O half of a binding's SonarQube side: read each repository's project binding, carry
//! out [`crate::plan::sonarqube::bindings::plan_project`] (bind, or create and bind), and
//! remove the bindings the operator made when their repository leaves. One `get_binding` per
//! repository when nothing changed; writes only for what differs.

use futures::{StreamExt, stream};

use crate::{
    bitbucket::Secret,
    plan::sonarqube::bindings::{
        DesiredBinding, ObservedProject, ProjectAction, ProjectResult, RepositoryProject, plan_project, removes_binding,
    },
    sonarqube::{BitbucketBinding, BoundProject, Client, Error},
};

use crate::sync::PARALLEL_REPOSITORIES;

/// How this SonarQube binds a project to its repository.
#[derive(Clone, Debug)]
pub enum Route {
    /// `set_bitbucket_binding` (commercial editions).
    SetBinding,
    /// v2 `bound-projects` (Community Build), which uses a Bitbucket token stored for the
    /// operator's own SonarQube user: this one, stored first.
    BoundProjects {
        /// The Bitbucket token for the operator's SonarQube user.
        pat: Secret,
    },
}

/// One repository's project to keep bound.
#[derive(Clone, Debug)]
pub struct ProjectWork {
    /// The repository slug.
    pub slug: String,
    /// The repository's name, which a created project takes.
    pub name: String,
    /// The binding its project should have.
    pub desired: DesiredBinding,
}

/// Reads what SonarQube holds for a project.
pub async fn observe_project(client: &Client, project: &str) -> Result<ObservedProject, Error> {
    match client.get_binding(project).await {
        Ok(Some(binding)) => Ok(ObservedProject::Bound(binding)),
        Ok(None) => Ok(ObservedProject::Unbound),
        Err(Error::ProjectNotFound { .. }) => Ok(ObservedProject::Missing),
        Err(error) => Err(error),
    }
}

/// Reads what SonarQube holds for each repository's project (`plan` stops here).
pub async fn observe_projects(
    client: &Client,
    work: Vec<ProjectWork>,
) -> Vec<(ProjectWork, Result<ObservedProject, Error>)> {
    stream::iter(work)
        .map(|item| async move {
            let observed = observe_project(client, &item.desired.project).await;
            (item, observed)
        })
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await
}

/// Keeps each repository's project bound: reads them all, then writes what differs. On
/// Community Build the operator's user's token is stored once before the first write.
pub async fn keep_projects(
    client: &Client,
    route: &Route,
    work: Vec<ProjectWork>,
    create: bool,
) -> Vec<RepositoryProject> {
    let observed = observe_projects(client, work).await;
    let mut results = Vec::new();
    let mut writes = Vec::new();
    for (item, observed) in observed {
        let result = match observed {
            Err(error) => Some(ProjectResult::Failed(error)),
            Ok(observed) => match plan_project(&item.desired, &observed, create, &item.name) {
                ProjectAction::None => Some(ProjectResult::InSync),
                ProjectAction::Missing => Some(ProjectResult::Missing),
                action => {
                    writes.push((item.clone(), action));
                    None
                }
            },
        };
        if let Some(result) = result {
            results.push(RepositoryProject { slug: item.slug, project: item.desired.project, result });
        }
    }
    if writes.is_empty() {
        return results;
    }
    let setting_id = match prepare(client, route, &writes[0].0.desired.alm_setting).await {
        Ok(id) => id,
        Err(error) => {
            results.extend(writes.into_iter().map(|(item, _)| RepositoryProject {
                slug: item.slug,
                project: item.desired.project,
                result: ProjectResult::Failed(error.clone()),
            }));
            return results;
        }
    };
    let setting_id = setting_id.as_deref();
    let written: Vec<RepositoryProject> = stream::iter(writes)
        .map(|(item, action)| async move {
            let result = match write(client, setting_id, &item, &action).await {
                Ok(result) => result,
                Err(error) => ProjectResult::Failed(error),
            };
            RepositoryProject { slug: item.slug, project: item.desired.project, result }
        })
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    results.extend(written);
    results
}

/// On Community Build: stores the operator's user's token and finds the setting's id (v2
/// names settings by id). `None` on commercial editions.
async fn prepare(client: &Client, route: &Route, alm_setting: &str) -> Result<Option<String>, Error> {
    let Route::BoundProjects { pat } = route else {
        return Ok(None);
    };
    client.set_pat(alm_setting, pat).await?;
    let settings = client.dop_settings().await?;
    settings
        .into_iter()
        .find(|s| s.key == alm_setting)
        .map(|s| Some(s.id))
        .ok_or_else(|| Error::AlmSettingNotFound { key: alm_setting.to_owned() })
}

async fn write(
    client: &Client,
    setting_id: Option<&str>,
    item: &ProjectWork,
    action: &ProjectAction,
) -> Result<ProjectResult, Error> {
    let desired = &item.desired;
    let (created, was) = match action {
        ProjectAction::Bind { was } => (false, was.clone()),
        ProjectAction::CreateAndBind { .. } => (true, None),
        ProjectAction::None | ProjectAction::Missing => return Ok(ProjectResult::InSync),
    };
    match setting_id {
        None => {
            if let ProjectAction::CreateAndBind { name } = action {
                client.create_project(&desired.project, name).await?;
            }
            client
                .set_bitbucket_binding(&BitbucketBinding {
                    alm_setting: desired.alm_setting.clone(),
                    project: desired.project.clone(),
                    repository: desired.repository.clone(),
                    slug: desired.slug.clone(),
                    monorepo: desired.monorepo,
                })
                .await?;
        }
        Some(id) => {
            // The v2 call takes a name; an existing project keeps its own.
            let name = match action {
                ProjectAction::CreateAndBind { name } => name.clone(),
                _ => client.show_component(&desired.project).await?.map_or_else(|| item.name.clone(), |p| p.name),
            };
            client
                .put_bound_project(&BoundProject {
                    project_key: desired.project.clone(),
                    project_name: crate::plan::sonarqube::keys::project_name(&name),
                    dev_ops_platform_setting_id: id.to_owned(),
                    bitbucket_project: desired.repository.clone(),
                    slug: desired.slug.clone(),
                    monorepo: desired.monorepo,
                })
                .await?;
        }
    }
    Ok(ProjectResult::Bound { created, was })
}

/// What removing a binding's project bindings did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// How many bindings were removed.
    pub removed: usize,
    /// Projects still bound as the operator bound them, because this edition cannot unbind
    /// over its API (Community Build).
    pub kept: Vec<String>,
}

/// What became of one binding the operator made.
enum Unbound {
    Removed,
    /// The edition cannot unbind: the project key.
    Kept(String),
}

/// Removes the bindings of these projects that are still the ones the operator made (a project
/// bound elsewhere since is left alone), never the projects. Returns the first failure with its
/// project.
pub async fn release_projects(client: &Client, targets: Vec<DesiredBinding>) -> Result<Released, (String, Error)> {
    let results: Vec<Result<Option<Unbound>, (String, Error)>> = stream::iter(targets)
        .map(|desired| async move {
            let fail = |e: Error| (desired.project.clone(), e);
            let observed = observe_project(client, &desired.project).await.map_err(fail)?;
            if !removes_binding(&desired, &observed) {
                return Ok(None);
            }
            match client.delete_binding(&desired.project).await {
                Ok(()) => Ok(Some(Unbound::Removed)),
                Err(Error::EndpointMissing { .. }) => Ok(Some(Unbound::Kept(desired.project.clone()))),
                Err(error) => Err(fail(error)),
            }
        })
        .buffer_unordered(PARALLEL_REPOSITORIES)
        .collect()
        .await;
    let mut released = Released::default();
    for result in results {
        match result? {
            Some(Unbound::Removed) => released.removed += 1,
            Some(Unbound::Kept(project)) => released.kept.push(project),
            None => {}
        }
    }
    released.kept.sort();
    Ok(released)
}
