//! Certificates for TLS tests: a throwaway CA, a server certificate for 127.0.0.1 and
//! localhost, and client certificates with a chosen subject, all as PEM files in a temporary
//! directory (what `--ssl-cert-file`, librdkafka's `ssl.*.location` and the Java client's PEM
//! stores read).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A CA and the certificates it signed, as files.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Pki {
    /// A new CA (named `name`) with a server certificate for 127.0.0.1 and localhost.
    pub fn new(name: &str) -> Result<Pki> {
        let dir = tempfile::Builder::new()
            .prefix("tierlog-pki-")
            .tempdir()
            .context("creating the PKI directory")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        std::fs::write(dir.path().join("ca.pem"), ca.pem())?;
        let pki = Pki { dir, ca };
        pki.issue_server(&pki.server_cert(), &pki.server_key())?;
        Ok(pki)
    }

    /// The CA certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server key (PEM, PKCS#8).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// Writes a new server certificate signed by this CA to `cert` and `key` (each replaced
    /// atomically, key first).
    pub fn issue_server(&self, cert: &Path, key: &Path) -> Result<()> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "tierlog-node");
        let k = KeyPair::generate()?;
        let c = params.signed_by(&k, &self.ca)?;
        write_atomically(key, k.serialize_pem().as_bytes())?;
        write_atomically(cert, c.pem().as_bytes())?;
        Ok(())
    }

    /// A client certificate with subject `CN=<cn>,OU=<ou>,O=tierlog` and its key, written as
    /// `<cn>.pem` and `<cn>.key`; returns (certificate, key).
    pub fn client(&self, cn: &str, ou: &str) -> Result<(PathBuf, PathBuf)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "tierlog");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
        params.distinguished_name.push(DnType::CommonName, cn);
        let k = KeyPair::generate()?;
        let c = params.signed_by(&k, &self.ca)?;
        let cert = self.dir.path().join(format!("{cn}.pem"));
        let key = self.dir.path().join(format!("{cn}.key"));
        std::fs::write(&cert, c.pem())?;
        std::fs::write(&key, k.serialize_pem())?;
        Ok((cert, key))
    }

    /// The node flags for a TLS listener with this server certificate (and this CA trusted
    /// for client certificates).
    pub fn node_args(&self) -> Vec<String> {
        vec![
            "--ssl-cert-file".into(),
            self.server_cert().display().to_string(),
            "--ssl-key-file".into(),
            self.server_key().display().to_string(),
            "--ssl-ca-file".into(),
            self.ca_file().display().to_string(),
        ]
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
