//! One ACME order, start to end: the account (stored, or created and stored), the
//! order for a certificate's identifiers, each authorization's HTTP-01 challenge
//! answered through [`Challenges`], the CSR signed with a new key, and the chain.

use super::challenge::Challenges;
use super::client::Client;
use super::plan::{CertPlan, IssuerPlan};
use crate::config::AcmeKey;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use log::info;
use std::time::Duration;

/// A new certificate: the chain and its key, PEM.
pub struct Issued {
    pub chain: String,
    pub key: String,
}

/// The account at `issuer`: the stored one, or a new one (then stored).
pub async fn account(issuer: &IssuerPlan) -> Result<Account, String> {
    let http = || -> Result<Box<Client>, String> {
        Ok(Box::new(Client::new(
            issuer.roots.as_deref(),
            issuer.verify,
        )?))
    };
    if let Some(credentials) = issuer.state.account(&issuer.uri) {
        return Account::builder_with_http(http()?)
            .from_credentials(credentials)
            .await
            .map_err(|e| format!("directory {}: {e}", issuer.uri));
    }
    let contacts: Vec<&str> = issuer.contacts.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(http()?)
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            issuer.uri.clone(),
            None,
        )
        .await
        .map_err(|e| format!("directory {}: cannot create an account: {e}", issuer.uri))?;
    issuer.state.save_account(&issuer.uri, &credentials)?;
    info!(
        "acme_issuer \"{}\": account {} created",
        issuer.name,
        account.id()
    );
    Ok(account)
}

/// Orders `plan`'s certificate with `account`. Challenges are answered while the
/// order runs and forgotten after, whatever the outcome.
pub async fn issue(
    account: &Account,
    plan: &CertPlan,
    challenges: &Challenges,
) -> Result<Issued, String> {
    let mut tokens = Vec::new();
    let result = run(account, plan, challenges, &mut tokens).await;
    for token in &tokens {
        challenges.remove(token);
    }
    result
}

async fn run(
    account: &Account,
    plan: &CertPlan,
    challenges: &Challenges,
    tokens: &mut Vec<String>,
) -> Result<Issued, String> {
    let identifiers: Vec<Identifier> = plan
        .identifiers
        .iter()
        .map(|name| Identifier::Dns(name.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authz = result.map_err(|e| format!("authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("authorization is {other:?}")),
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or("the CA offers no http-01 challenge")?;
        let answer = challenge.key_authorization();
        challenges.insert(&challenge.token, answer.as_str());
        tokens.push(challenge.token.clone());
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge: {e}"))?;
    }
    // Validation takes the CA a moment per name; a minute bounds it.
    let patient = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(Duration::from_secs(60));
    let status = order
        .poll_ready(&patient)
        .await
        .map_err(|e| format!("waiting for validation: {e}"))?;
    if status != OrderStatus::Ready {
        let detail = order
            .state()
            .error
            .as_ref()
            .map(|p| format!(": {p}"))
            .unwrap_or_default();
        return Err(format!("the order is {status:?}{detail}"));
    }
    let (csr, key) = csr(plan)?;
    order
        .finalize_csr(&csr)
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain = order
        .poll_certificate(&patient)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    Ok(Issued { chain, key })
}

/// A new key of the plan's type and a CSR for its identifiers (DER), with the key PEM.
fn csr(plan: &CertPlan) -> Result<(Vec<u8>, String), String> {
    let alg = match plan.key {
        AcmeKey::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        AcmeKey::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
    };
    let key = rcgen::KeyPair::generate_for(alg).map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(plan.identifiers.clone()).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
    Ok((csr.der().to_vec(), key.serialize_pem()))
}
