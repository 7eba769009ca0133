//! The real `aws-sdk-kms` client, pointed at a test endpoint with static credentials.

use aws_sdk_kms::{
    Client,
    config::{BehaviorVersion, Region},
};

/// A KMS client for `endpoint` (`http://…` for the emulator) in `region`, signing with
/// `access_key_id` and `secret_access_key`.
pub fn client(
    region: &str,
    endpoint: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "test",
        ))
        .build();
    Client::from_conf(config)
}
