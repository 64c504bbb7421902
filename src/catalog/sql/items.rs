//! Items with their variants in one statement: a media row per item joined
//! to its non-removed variants, one row per variant, folded back into
//! records here. One statement rather than items then variants: one round
//! trip on PostgreSQL, and the variants are those of the same instant as
//! the items (a purge or delete between two statements cannot split them).

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::Row as _;

use super::dialect;
use super::rows::{self, MEDIA_COLUMNS, Row, VARIANT_COLUMNS};
use crate::catalog::{MediaRecord, Result};
use crate::model::MediaId;

/// Prefix of the media row's columns: media and variants share
/// `created_at` (and `media_id`, read once, from the media row).
const MEDIA_PREFIX: &str = "m_";

/// The variant columns of an item row (all but `media_id`, which the media
/// row gives).
fn variant_columns() -> impl Iterator<Item = &'static str> {
    VARIANT_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| *c != "media_id")
}

/// The columns of an item row (`m`) and of its variant (`v`, all null when
/// the item has none).
pub static ITEM_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let variant = variant_columns()
        .map(|c| format!("v.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}, {variant}",
        rows::prefixed("m", MEDIA_COLUMNS, MEDIA_PREFIX)
    )
});

/// The columns of [`ITEM_COLUMNS`], all null: a row of other columns that
/// a statement unites with item rows.
pub static ITEM_NULLS: LazyLock<String> = LazyLock::new(|| {
    let variant = variant_columns()
        .map(|c| format!("NULL AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{}, {variant}", rows::nulls(MEDIA_COLUMNS, MEDIA_PREFIX))
});

/// The items among the list bound as parameter `list` in scope `scope` (a
/// parameter, or a sub-query of one value), with their variants: a row
/// per variant, after the `lead` columns (none, or those of other rows the
/// statement unites with these, as nulls). The list drives the join, one
/// row per value (see `media::attach_variants` for why a join).
pub fn items_select(lead: &str, scope: &str, list: u32) -> String {
    let lead = if lead.is_empty() {
        String::new()
    } else {
        format!("{lead}, ")
    };
    format!(
        "SELECT {lead}{cols} FROM {list} CROSS JOIN media m{WITH_VARIANTS} \
         WHERE m.scope_id = {scope} AND m.media_id = value AND m.live_count > 0",
        cols = *ITEM_COLUMNS,
        list = dialect::list_table(list),
    )
}

/// Joins the media row `m` to its variants. A left join, so that an item
/// keeps its row even without a non-removed variant, as when the variants
/// were read apart. By the variants' primary key (`scope_id, media_id,
/// label`): an index range per item on both databases.
const WITH_VARIANTS: &str = " LEFT JOIN variants v ON v.scope_id = m.scope_id \
     AND v.media_id = m.media_id AND v.status <> 'removed'";

/// The IDs to bind as the list driving the join: sorted and unique, so that
/// each item comes once.
pub fn unique_ids(ids: &[MediaId]) -> Vec<&str> {
    let mut ids: Vec<&str> = ids.iter().map(|m| m.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The items of rows read with [`ITEM_COLUMNS`], in no particular order,
/// each with its variants in label order. Rows without an item (of
/// [`ITEM_NULLS`]) are passed over.
pub fn fold(rows: &[Row]) -> Result<Vec<MediaRecord>> {
    let mut items: Vec<MediaRecord> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    let media_id = format!("{MEDIA_PREFIX}media_id");
    for row in rows {
        let Some(id) = row.try_get::<Option<String>, _>(media_id.as_str())? else {
            continue;
        };
        let i = match at.get(&id) {
            Some(&i) => i,
            None => {
                items.push(rows::media_in(row, MEDIA_PREFIX)?);
                at.insert(id, items.len() - 1);
                items.len() - 1
            }
        };
        if row.try_get::<Option<&str>, _>("label")?.is_some() {
            items[i].variants.push(rows::variant(row)?);
        }
    }
    for m in &mut items {
        m.variants.sort_unstable_by(|a, b| a.label.cmp(&b.label));
    }
    Ok(items)
}
