//! The cluster's certificates (openssl's command line) and kubeconfigs: a CA; the API server's serving
//! certificate; an admin client (`system:masters`); the API server's client for kubelets; the node's
//! client (`system:node:<name>`, group `system:nodes`); the service-account key pair; a front-proxy CA
//! and client (without them the controller manager and scheduler log CA-bundle errors every few seconds).

use super::Layout;
use crate::run;
use std::path::Path;
use std::process::Command;

/// Creates what is missing under `pki/` (a second `up` keeps the same CA, so kubeconfigs stay valid).
pub fn ensure(l: &Layout) -> Result<(), String> {
    let pki = &l.pki;
    std::fs::create_dir_all(pki).map_err(|e| format!("{}: {e}", pki.display()))?;
    ca(pki, "ca", "shipper-cluster-ca")?;
    ca(pki, "front-proxy-ca", "shipper-cluster-front-proxy-ca")?;
    let mut sans = vec![
        "DNS:localhost".to_string(),
        "DNS:kubernetes".into(),
        "DNS:kubernetes.default".into(),
        "DNS:kubernetes.default.svc".into(),
        "DNS:kubernetes.default.svc.cluster.local".into(),
        "IP:127.0.0.1".into(),
        "IP:10.96.0.1".into(),
    ];
    sans.push(format!("IP:{}", l.node_ip));
    sans.push(format!("DNS:{}", l.node_name));
    leaf(pki, "ca", "apiserver", "/CN=kube-apiserver", Some(&sans.join(",")))?;
    leaf(pki, "ca", "admin", "/O=system:masters/CN=shipper-cluster-admin", None)?;
    leaf(
        pki,
        "ca",
        "apiserver-kubelet-client",
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        None,
    )?;
    let node = format!("/O=system:nodes/CN=system:node:{}", l.node_name);
    leaf(pki, "ca", "node", &node, None)?;
    leaf(
        pki,
        "front-proxy-ca",
        "front-proxy-client",
        "/CN=front-proxy-client",
        None,
    )?;
    if !pki.join("sa.pub").exists() {
        key(pki, "sa")?;
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in", "sa.key", "-out", "sa.pub"])
            .current_dir(pki))?;
    }
    kubeconfig(l, "admin", "admin")?;
    kubeconfig(l, "kubelet", "node")
}

fn key(pki: &Path, name: &str) -> Result<(), String> {
    run(Command::new("openssl")
        .args(["genrsa", "-out", &format!("{name}.key"), "2048"])
        .current_dir(pki)
        .stderr(std::process::Stdio::null()))
}

fn ca(pki: &Path, name: &str, cn: &str) -> Result<(), String> {
    if pki.join(format!("{name}.crt")).exists() {
        return Ok(());
    }
    key(pki, name)?;
    run(Command::new("openssl")
        .args(["req", "-x509", "-new", "-nodes", "-key", &format!("{name}.key")])
        .args([
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "3650",
            "-out",
            &format!("{name}.crt"),
        ])
        .current_dir(pki))
}

/// A key and a certificate signed by `ca`, for servers (with `sans`) and clients alike.
fn leaf(pki: &Path, ca: &str, name: &str, subject: &str, sans: Option<&str>) -> Result<(), String> {
    if pki.join(format!("{name}.crt")).exists() {
        return Ok(());
    }
    key(pki, name)?;
    let mut ext = String::from(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
    if let Some(sans) = sans {
        ext += &format!("subjectAltName={sans}\n");
    }
    let ext_file = pki.join(format!("{name}.ext"));
    std::fs::write(&ext_file, ext).map_err(|e| format!("{}: {e}", ext_file.display()))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-out",
            &format!("{name}.csr"),
        ])
        .current_dir(pki))?;
    run(Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
        ])
        .args(["-CAkey", &format!("{ca}.key"), "-CAcreateserial", "-days", "3650"])
        .args(["-out", &format!("{name}.crt"), "-extfile", &format!("{name}.ext")])
        .current_dir(pki)
        .stderr(std::process::Stdio::null()))
}

/// `<name>.kubeconfig` in the state directory, authenticating with the `cert` client certificate.
fn kubeconfig(l: &Layout, name: &str, cert: &str) -> Result<(), String> {
    let pki = l.pki.display();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: shipper\n  cluster:\n    server: {server}\n    certificate-authority: {pki}/ca.crt\nusers:\n- name: {name}\n  user:\n    client-certificate: {pki}/{cert}.crt\n    client-key: {pki}/{cert}.key\ncontexts:\n- name: shipper\n  context: {{cluster: shipper, user: {name}}}\ncurrent-context: shipper\n",
        server = l.server()
    );
    let path = l.state.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}
