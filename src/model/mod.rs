//! Domain vocabulary shared by every layer: identifiers, settings, variant
//! states and the JSON views the Vault+ API answers with.

pub mod admission;
pub mod ids;
pub mod key_scope;
pub mod list_plan;
pub mod observed;
pub mod schema;
pub mod settings;
pub mod time;
pub mod variant;
pub mod views;
pub mod webhook;
pub mod webhook_views;
pub mod whole;

pub use ids::{ConnectionId, Label, ListId, MediaId, OrgName};
pub use key_scope::KeyScope;
pub use settings::{SettingsPatch, VaultPlusSettings};
pub use variant::{MediaType, VariantStatus};
