//! Operator actions behind the CLI: bootstrap, keys, connections. These act
//! for the operator (no API key), so they take org names, not principals.

use anyhow::{Context, bail};

use crate::catalog::{ApiKeyRecord, Catalog, Connection, Org};
use crate::model::KeyScope;
use crate::model::time::now_ms;
use crate::model::{ConnectionId, OrgName, VaultPlusSettings};

use super::keys;

pub const DEFAULT_ORG: &str = "default";

/// Creates the default organization and an ACCOUNT key when the catalog
/// has no organization yet. Returns the key to show, once.
pub async fn bootstrap(catalog: &dyn Catalog) -> anyhow::Result<Option<String>> {
    if !catalog.list_orgs().await?.is_empty() {
        return Ok(None);
    }
    let name = OrgName::parse(DEFAULT_ORG).map_err(anyhow::Error::msg)?;
    let (org, created) = catalog
        .ensure_org(&name, &VaultPlusSettings::default(), true, now_ms())
        .await?;
    if !created {
        return Ok(None);
    }
    let minted = keys::mint(org.id, vec![KeyScope::Account], now_ms());
    catalog.insert_api_key(&minted.record).await?;
    Ok(Some(minted.plaintext))
}

async fn org_named(catalog: &dyn Catalog, name: &str, create: bool) -> anyhow::Result<Org> {
    let name = OrgName::parse(name).map_err(anyhow::Error::msg)?;
    if create {
        let (org, _) = catalog
            .ensure_org(&name, &VaultPlusSettings::default(), true, now_ms())
            .await?;
        return Ok(org);
    }
    catalog
        .org_by_name(&name)
        .await?
        .with_context(|| format!("no organization named {name:?} (see `vaultplus keys create`)"))
}

/// Mints a key for `org` (created if needed) and returns its text.
pub async fn create_key(
    catalog: &dyn Catalog,
    org: &str,
    scopes: &[String],
) -> anyhow::Result<String> {
    if scopes.is_empty() {
        bail!("give at least one --scope (ACCOUNT, ACCESS, LINK or DYNAMIC_RULES)");
    }
    let mut parsed = Vec::new();
    for s in scopes {
        let scope = KeyScope::parse(s).with_context(|| {
            format!("unknown scope {s:?}: expected ACCOUNT, ACCESS, LINK or DYNAMIC_RULES")
        })?;
        if !parsed.contains(&scope) {
            parsed.push(scope);
        }
    }
    let org = org_named(catalog, org, true).await?;
    let minted = keys::mint(org.id, parsed, now_ms());
    catalog.insert_api_key(&minted.record).await?;
    Ok(minted.plaintext)
}

/// Keys with their organization names.
pub async fn list_keys(
    catalog: &dyn Catalog,
    org: Option<&str>,
) -> anyhow::Result<Vec<(ApiKeyRecord, String)>> {
    let orgs = catalog.list_orgs().await?;
    let filter = match org {
        Some(name) => Some(org_named(catalog, name, false).await?.id),
        None => None,
    };
    let keys = catalog.list_api_keys(filter).await?;
    Ok(keys
        .into_iter()
        .map(|k| {
            let name = orgs
                .iter()
                .find(|o| o.id == k.org_id)
                .map(|o| o.name.clone())
                .unwrap_or_default();
            (k, name)
        })
        .collect())
}

/// Revokes a key given by its ID or its full text.
pub async fn revoke_key(catalog: &dyn Catalog, key: &str) -> anyhow::Result<()> {
    let id = keys::split(key).map_or(key, |(id, _)| id);
    if !catalog.revoke_api_key(id, now_ms()).await? {
        bail!("no live key with ID {id:?} (see `vaultplus keys list`)");
    }
    Ok(())
}

pub async fn add_connection(
    catalog: &dyn Catalog,
    org: &str,
    id: &str,
    enabled: Option<bool>,
) -> anyhow::Result<Connection> {
    let id = ConnectionId::parse(id).map_err(anyhow::Error::msg)?;
    let org = org_named(catalog, org, true).await?;
    let enabled = enabled.unwrap_or(org.auto_enable);
    if !catalog
        .insert_connection(org.id, &id, enabled, now_ms())
        .await?
    {
        bail!("organization {:?} already has connection {id}", org.name);
    }
    catalog
        .connection(org.id, &id)
        .await?
        .context("connection vanished right after it was added")
}

pub async fn list_connections(catalog: &dyn Catalog, org: &str) -> anyhow::Result<Vec<Connection>> {
    let org = org_named(catalog, org, false).await?;
    let mut all = Vec::new();
    loop {
        let page = catalog
            .list_connections(org.id, all.len() as u64, 500)
            .await?;
        let n = page.len();
        all.extend(page);
        if n < 500 {
            return Ok(all);
        }
    }
}

/// Removes a connection after purging its media; returns what was purged.
pub async fn remove_connection(
    catalog: &dyn Catalog,
    org: &str,
    id: &str,
) -> anyhow::Result<crate::catalog::PurgeOutcome> {
    let id = ConnectionId::parse(id).map_err(anyhow::Error::msg)?;
    let org = org_named(catalog, org, false).await?;
    catalog
        .remove_connection(org.id, &id, now_ms())
        .await?
        .with_context(|| format!("organization {:?} has no connection {id}", org.name))
}
