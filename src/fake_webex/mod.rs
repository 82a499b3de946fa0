//! TODO stub (replaced by the real fake)
pub const DEMO_CLIENT_ID: &str = "C0";
pub const DEMO_CLIENT_SECRET: &str = "0";
#[derive(Default)]
pub struct FakeConfig {
    pub redirect_uris: Vec<String>,
}
pub struct FakeWebex;
impl FakeWebex {
    pub async fn spawn(_c: FakeConfig) -> std::io::Result<Self> {
        Ok(Self)
    }
    pub fn base_url(&self) -> String {
        String::new()
    }
}
