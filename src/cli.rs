//! The command line: `portcullis serve` and its kube-apiserver-style flags.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis_authn::X509Authenticator;
use serde_json::json;

use crate::server::{self, AppState, Metrics};
use crate::storage::{Store, StoreError, TxnOp};
use crate::{pki, tls};

/// portcullis: the front door of a Kubernetes cluster.
///
/// It authenticates callers, authorizes them with Kubernetes RBAC, checks objects against
/// security policy, stores what it admits and audits all of it. kubectl talks to it as to a
/// kube-apiserver.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: an HTTPS server that speaks the Kubernetes API.
    ///
    /// With no flags it creates ./portcullis-data with a CA, a serving certificate, an admin
    /// client certificate (group system:masters) and admin.kubeconfig, and stores objects in
    /// an embedded database in the same directory.
    Serve(Box<ServeArgs>),
    /// Ask whether a user may do something, answered offline from RBAC manifests.
    ///
    /// Examples: `portcullis can-i list pods -n team --as alice -f rbac/`,
    /// `portcullis can-i get /metrics --as-group monitoring -f rbac.yaml`,
    /// `portcullis can-i --list -n team --as alice -f rbac/`. Exit 0 for yes, 1 for no.
    CanI(crate::offline::CanIArgs),
    /// List the subjects that may do something, from RBAC manifests.
    ///
    /// Example: `portcullis who-can delete secrets -n team -f rbac/`.
    WhoCan(crate::offline::WhoCanArgs),
    /// Check manifests with the gateway's admission engine (Pod Security, image policy, Rego)
    /// and RBAC risk checks, with reports for CI.
    ///
    /// Examples: `portcullis lint k8s/`, `helm template . | portcullis lint -`,
    /// `portcullis lint --pod-security restricted --format sarif k8s/ > lint.sarif`.
    /// Exit 0 clean, 1 findings at or above --fail-on, 2 usage error or unreadable input.
    Lint(Box<crate::lint::LintArgs>),
    /// kubectl exec credential plugin for LDAP users: exchanges LDAP credentials for a token.
    ///
    /// Use it in a kubeconfig user entry: `exec: {apiVersion: client.authentication.k8s.io/v1,
    /// command: portcullis, args: [credential], provideClusterInfo: true, interactiveMode:
    /// IfAvailable}`. It reads PORTCULLIS_USERNAME / PORTCULLIS_PASSWORD or asks on the terminal,
    /// and caches the token until it expires.
    Credential,
    /// Print the kubeconfig-format file a kube-apiserver takes to use portcullis as a webhook.
    #[command(subcommand)]
    WebhookConfig(WebhookConfig),
    /// Work with admission policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Read an audit trail: check its hash chain, filter its events.
    #[command(subcommand)]
    Audit(crate::audit_cli::AuditCommand),
    /// Back up, restore and migrate the stored objects: `store export`, `store import`.
    ///
    /// Example, embedded store to etcd: stop the gateway, then `portcullis store export
    /// -o backup.jsonl.gz` and `portcullis store import --storage-backend etcd3 --etcd-servers
    /// https://etcd-0:2379 ... backup.jsonl.gz`.
    #[command(subcommand)]
    Store(crate::store_cli::StoreCommand),
}

/// `portcullis policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run Gatekeeper test suites (`gator verify` format) with portcullis' Rego engine.
    ///
    /// Each `test.gatekeeper.sh/v1alpha1` Suite names a ConstraintTemplate, a Constraint and
    /// cases (an object or AdmissionReview, optional inventory, and assertions on the number of
    /// violations and their messages). Example: `portcullis policy verify policies/gatekeeper/`.
    /// Exit 0 when every case passes, 1 when one fails or cannot run, 2 on usage errors.
    Verify(crate::gator::VerifyArgs),
}

/// Webhook configurations for kube-apiserver.
#[derive(Debug, Subcommand)]
pub enum WebhookConfig {
    /// For `--authorization-webhook-config-file` (use with `--authorization-webhook-version=v1`).
    ///
    /// Issues a client certificate for the kube-apiserver (group `portcullis:webhook-callers`,
    /// which the bootstrap policy binds to `system:auth-delegator`) from the data directory's CA
    /// and embeds it, with the CA that signed portcullis' serving certificate.
    Authz(WebhookConfigArgs),
    /// For `--authentication-token-webhook-config-file` (use with
    /// `--authentication-token-webhook-version=v1`): kube-apiserver asks portcullis TokenReviews.
    Authn(WebhookConfigArgs),
    /// A ValidatingWebhookConfiguration and a MutatingWebhookConfiguration (with caBundle) that
    /// send pods and workloads to portcullis' admission webhooks; apply them with kubectl.
    Admission(WebhookConfigArgs),
}

/// Flags of `portcullis webhook-config`.
#[derive(Debug, Args)]
pub struct WebhookConfigArgs {
    /// The URL kube-apiserver reaches portcullis at, e.g. `https://portcullis.example:6443`.
    #[arg(long, value_name = "URL")]
    pub server: String,

    /// The data directory of the portcullis server (its CA signs the client certificate).
    #[arg(long, default_value = "portcullis-data", value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// Flags of `portcullis serve`; names follow kube-apiserver's where the meaning is the same.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory for generated PKI, the admin kubeconfig and the embedded store.
    #[arg(long, default_value = "portcullis-data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Where objects are stored.
    #[command(flatten)]
    pub storage: crate::storage::flags::StorageArgs,

    /// IP address to listen on (0.0.0.0 or :: for every interface).
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub bind_address: IpAddr,

    /// Port to serve HTTPS on (0 picks a free one; the printed line and kubeconfig name it).
    #[arg(long, default_value_t = 6443, value_name = "PORT")]
    pub secure_port: u16,

    /// Serving certificate (PEM, chain allowed) instead of the generated one.
    #[arg(long, value_name = "FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// CA bundle (PEM) that client certificates are verified against, instead of the
    /// generated CA. The generated admin kubeconfig only works when its CA is in the bundle.
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// Extra subject alternative names (DNS names or IPs) for the generated serving
    /// certificate; repeatable.
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,

    /// Serve requests without credentials as `system:anonymous` (group `system:unauthenticated`)
    /// on every path, for RBAC to decide. Off by default: only the health paths are anonymous.
    #[arg(long)]
    pub anonymous_auth: bool,

    /// Static bearer tokens: a CSV file of `token,user,uid[,"group1,group2"]` (reloaded when it
    /// changes; a malformed file stops start-up naming the line).
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,

    /// PEM public (or private) keys service-account tokens are verified with; repeatable. The
    /// signing key's public key is always included.
    #[arg(long = "service-account-key-file", value_name = "FILE")]
    pub service_account_key_files: Vec<PathBuf>,

    /// PKCS#8 PEM private key service-account tokens are signed with (default: `sa.key` in the
    /// data directory, created on first start).
    #[arg(long, value_name = "FILE")]
    pub service_account_signing_key_file: Option<PathBuf>,

    /// Issuer of service-account tokens; repeatable: the first signs, all are accepted.
    #[arg(
        long = "service-account-issuer",
        value_name = "URL",
        default_value = "https://kubernetes.default.svc.cluster.local"
    )]
    pub service_account_issuers: Vec<String>,

    /// How long a verified service-account or login token is trusted before it is verified
    /// again (0s turns the cache off).
    #[arg(long, default_value = "10s", value_parser = crate::duration::flag)]
    pub token_cache_ttl: std::time::Duration,

    /// Audiences the API accepts for tokens (comma-separated; default: the first issuer).
    #[arg(long, value_delimiter = ',', value_name = "AUDIENCE")]
    pub api_audiences: Vec<String>,

    /// LDAP server for HTTP Basic credentials: `ldap://host:port` or `ldaps://host:port`.
    #[arg(long, value_name = "URL", help_heading = "LDAP")]
    pub ldap_url: Option<String>,

    /// DN of the service account that searches for users.
    #[arg(long, value_name = "DN", help_heading = "LDAP")]
    pub ldap_bind_dn: Option<String>,

    /// File holding the service account's password.
    #[arg(long, value_name = "FILE", help_heading = "LDAP")]
    pub ldap_bind_password_file: Option<PathBuf>,

    /// Base DN users are searched under (subtree).
    #[arg(long, value_name = "DN", help_heading = "LDAP")]
    pub ldap_user_base_dn: Option<String>,

    /// User filter; `{username}` is replaced by the escaped user name.
    #[arg(long, default_value = "(uid={username})", help_heading = "LDAP")]
    pub ldap_user_filter: String,

    /// Base DN groups are searched under (subtree); without it only `memberOf` gives groups.
    #[arg(long, value_name = "DN", help_heading = "LDAP")]
    pub ldap_group_base_dn: Option<String>,

    /// Group filter; `{dn}` is the user's DN, `{username}` the user name (both escaped). For
    /// posixGroups: `(|(member={dn})(memberUid={username}))`.
    #[arg(long, default_value = "(member={dn})", help_heading = "LDAP")]
    pub ldap_group_filter: String,

    /// Attribute holding the Kubernetes user name.
    #[arg(long, default_value = "uid", help_heading = "LDAP")]
    pub ldap_username_attribute: String,

    /// Attribute holding the user's uid (empty for none).
    #[arg(long, default_value = "", help_heading = "LDAP")]
    pub ldap_uid_attribute: String,

    /// Attribute holding a group's name.
    #[arg(long, default_value = "cn", help_heading = "LDAP")]
    pub ldap_group_name_attribute: String,

    /// CA bundle (PEM) for `ldaps://` or StartTLS.
    #[arg(long, value_name = "FILE", help_heading = "LDAP")]
    pub ldap_ca_file: Option<PathBuf>,

    /// Use StartTLS on an `ldap://` URL.
    #[arg(long, help_heading = "LDAP")]
    pub ldap_start_tls: bool,

    /// Timeout of the connect and of every LDAP operation.
    #[arg(long, default_value = "5s", value_parser = crate::duration::flag, help_heading = "LDAP")]
    pub ldap_timeout: std::time::Duration,

    /// How long a successful LDAP login is cached.
    #[arg(long, default_value = "60s", value_parser = crate::duration::flag, help_heading = "LDAP")]
    pub ldap_cache_ttl: std::time::Duration,

    /// How long a failed LDAP login is cached.
    #[arg(long, default_value = "5s", value_parser = crate::duration::flag, help_heading = "LDAP")]
    pub ldap_failure_cache_ttl: std::time::Duration,

    /// Admission configuration (kube-apiserver's `AdmissionConfiguration` with a `PodSecurity`
    /// plugin entry, or a bare `PodSecurityConfiguration`): defaults for namespaces without
    /// Pod Security labels, and exempt users, runtime classes and namespaces. Reloaded when the
    /// file changes; a file that does not load is refused and the previous one stays.
    #[arg(long, value_name = "FILE")]
    pub admission_control_config_file: Option<PathBuf>,

    /// Image policy (`portcullis.dev/v1` `ImagePolicy`, YAML or JSON): allowed and blocked
    /// registries, `:latest`, digests and pull policies, per namespace label selector. Reloaded
    /// when it changes; a file that does not load keeps the previous policy.
    #[arg(long, value_name = "FILE")]
    pub image_policy_file: Option<PathBuf>,

    /// Rego policies: conftest-style `.rego` files (`deny`, `violation`, `warn`) and Gatekeeper
    /// ConstraintTemplates with their Constraints (YAML), under this directory. Checked after
    /// Pod Security and the image policy; polled and recompiled when files change (a policy that
    /// does not compile keeps the previous set and logs the file and line).
    #[arg(long, value_name = "DIR")]
    pub admission_policy_dir: Option<PathBuf>,

    /// Audit policy (`audit.k8s.io/v1` `Policy`, YAML or JSON): which requests are recorded and
    /// at which level. Reloaded when it changes; a policy that does not load keeps the previous
    /// one. Without it, every request is recorded at Metadata level.
    #[arg(long, value_name = "FILE")]
    pub audit_policy_file: Option<PathBuf>,

    /// Audit log file (`-` for standard output); no audit log when unset. JSON lines, one
    /// `audit.k8s.io/v1` Event each, carrying a hash chain (`portcullis audit verify`).
    #[arg(long, value_name = "PATH")]
    pub audit_log_path: Option<PathBuf>,

    /// Rotate the audit log before it grows past this many megabytes (0: never).
    #[arg(long, value_name = "MB", default_value_t = 100)]
    pub audit_log_maxsize: u64,

    /// Rotated audit log files to keep (0: all).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub audit_log_maxbackup: u64,

    /// Days to keep rotated audit log files (0: forever).
    #[arg(long, value_name = "DAYS", default_value_t = 366)]
    pub audit_log_maxage: u64,

    /// Gzip rotated audit log files.
    #[arg(long)]
    pub audit_log_compress: bool,

    /// `blocking`: mutations wait until their events are written and fsynced (refused if they
    /// cannot be; after a failed closing event all mutations are refused until writes succeed);
    /// `blocking-strict`: every request does; `batch`: nothing waits, a full buffer drops events
    /// (counted in portcullis_audit_events_dropped_total).
    #[arg(long, value_name = "MODE", default_value = "blocking", value_parser = ["blocking", "blocking-strict", "batch"])]
    pub audit_log_mode: String,

    /// Events queued for the audit log writer.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub audit_log_batch_buffer_size: usize,

    /// Most events written in one group commit.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub audit_log_batch_max_size: usize,

    /// Audit webhook (kubeconfig format, as kube-apiserver's): audit events are POSTed to its
    /// server as `EventList` batches, retried with backoff.
    #[arg(long, value_name = "FILE")]
    pub audit_webhook_config_file: Option<PathBuf>,

    /// `batch` (default, as upstream: queued, a full buffer drops and counts), `blocking` or
    /// `blocking-strict` (as for the log: mutations, or every request, wait for the receiver's
    /// 2xx and are refused when it cannot be had after the retries).
    #[arg(long, value_name = "MODE", default_value = "batch", value_parser = ["blocking", "blocking-strict", "batch"])]
    pub audit_webhook_mode: String,

    /// Events queued for the audit webhook.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub audit_webhook_batch_buffer_size: usize,

    /// Most events in one POST to the audit webhook.
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub audit_webhook_batch_max_size: usize,

    /// Longest an event waits to be sent in batch mode, e.g. `30s`.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::flag)]
    pub audit_webhook_batch_max_wait: Option<std::time::Duration>,

    /// First wait before retrying a failed POST (then ×1.5 a retry, five attempts), e.g. `500ms`
    /// (default: 500ms in the blocking modes, 10s in batch mode).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::flag)]
    pub audit_webhook_initial_backoff: Option<std::time::Duration>,

    /// Take RBAC objects from this file or directory of manifests (YAML or JSON, reloaded when
    /// they change) instead of the store; the bootstrap policy is added. For webhook mode, where
    /// a kube-apiserver asks portcullis SubjectAccessReviews about RBAC kept in git.
    #[arg(long, value_name = "PATH")]
    pub rbac_manifests: Option<PathBuf>,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax (e.g. `info`, `portcullis=debug`).
    #[arg(long, default_value = "info", env = "PORTCULLIS_LOG")]
    pub log_level: String,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::CanI(args) => crate::offline::can_i(&args),
        Command::Credential => crate::credential::run(),
        Command::Lint(args) => crate::lint::run(&args),
        Command::WhoCan(args) => crate::offline::who_can(&args),
        Command::Policy(PolicyCommand::Verify(args)) => crate::gator::run(&args),
        Command::Audit(command) => crate::audit_cli::run(&command),
        Command::Store(command) => crate::store_cli::run(&command),
        Command::WebhookConfig(WebhookConfig::Authz(args)) => {
            print!("{}", webhook_config(&args, WebhookKind::Authz)?);
            Ok(0)
        }
        Command::WebhookConfig(WebhookConfig::Admission(args)) => {
            print!("{}", admission_webhook_config(&args)?);
            Ok(0)
        }
        Command::WebhookConfig(WebhookConfig::Authn(args)) => {
            print!("{}", webhook_config(&args, WebhookKind::Authn)?);
            Ok(0)
        }
        Command::Serve(args) => {
            init_logging(&args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(*args))?;
            Ok(0)
        }
    }
}

fn init_logging(args: &ServeArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level `{}`", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

/// `portcullis serve`: bootstrap, bind, serve until SIGTERM or SIGINT.
pub async fn serve(args: ServeArgs) -> Result<()> {
    tls::install_provider();
    let listener = server::bind(SocketAddr::new(args.bind_address, args.secure_port)).await?;
    let local = listener.local_addr().context("reading the bound address")?;
    let client_host = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let server_url = format!("https://{client_host}:{}", local.port());

    let mut sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = gethostname::gethostname()
        .to_str()
        .filter(|h| !h.is_empty())
    {
        sans.push(host.to_owned());
    }
    if !local.ip().is_unspecified() && !local.ip().is_loopback() {
        sans.push(local.ip().to_string());
    }
    sans.extend(args.tls_sans.iter().cloned());
    sans.dedup();
    let generated = pki::bootstrap(&args.data_dir, &sans, &server_url)?;
    let cert_file = args
        .tls_cert_file
        .clone()
        .unwrap_or(generated.serving_cert.clone());
    let key_file = args
        .tls_private_key_file
        .clone()
        .unwrap_or(generated.serving_key.clone());
    let client_ca_file = args
        .client_ca_file
        .clone()
        .unwrap_or(generated.client_ca.clone());
    let client_ca = tls::read_certs(&client_ca_file)?;
    let x509 = X509Authenticator::new(&client_ca)
        .with_context(|| format!("--client-ca-file `{}`", client_ca_file.display()))?;
    let tls_config = tls::server_config(&cert_file, &key_file, &client_ca)?;
    let x509 = Arc::new(arc_swap::ArcSwap::from_pointee(x509));
    watch_client_ca(client_ca_file.clone(), x509.clone());

    let store: Arc<dyn Store> = args.storage.open(&args.data_dir, true).await?;
    let rbac = until_store_answers(|| async {
        bootstrap_namespaces(store.as_ref()).await?;
        crate::rbac::bootstrap(store.as_ref())
            .await
            .context("creating the bootstrap RBAC policy")?;
        crate::rbac::Rbac::load_from(store.as_ref(), args.rbac_manifests.clone())
            .await
            .context("loading RBAC")
    })
    .await?;
    let rbac = Arc::new(rbac);
    rbac.watch_manifests(store.clone());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tokens = Arc::new(build_tokens(&args)?);
    let ldap = build_ldap(&args)?.map(Arc::new);
    tokens.watch_file();
    let pod_security = match &args.admission_control_config_file {
        Some(path) => crate::server::admission::PodSecurityConfig::load(path)
            .with_context(|| format!("--admission-control-config-file `{}`", path.display()))?,
        None => crate::server::admission::PodSecurityConfig::default(),
    };
    let pod_security = Arc::new(arc_swap::ArcSwap::from_pointee(pod_security));
    if let Some(path) = &args.admission_control_config_file {
        let (file, swap) = (path.clone(), pod_security.clone());
        crate::reload::watch(path.clone(), "admission control configuration", move || {
            swap.store(Arc::new(crate::server::admission::PodSecurityConfig::load(
                &file,
            )?));
            Ok(())
        });
    }
    let image_policy = Arc::new(arc_swap::ArcSwapOption::empty());
    if let Some(path) = &args.image_policy_file {
        image_policy.store(Some(Arc::new(load_image_policy(path)?)));
        watch_image_policy(path.clone(), image_policy.clone());
    }
    let policies = Arc::new(arc_swap::ArcSwapOption::empty());
    if let Some(dir) = &args.admission_policy_dir {
        policies.store(Some(Arc::new(crate::policies::load(dir).with_context(
            || format!("--admission-policy-dir `{}`", dir.display()),
        )?)));
        let (dir, swap) = (dir.clone(), policies.clone());
        crate::reload::watch_dir(dir.clone(), "admission policies", move || {
            swap.store(Some(Arc::new(crate::policies::load(&dir)?)));
            Ok(())
        });
    }
    let metrics = Arc::new(Metrics::default());
    let audit = Arc::new(build_auditor(&args, &metrics)?);
    if let (Some(path), true) = (&args.audit_policy_file, audit.enabled()) {
        let (file, auditor) = (path.clone(), audit.clone());
        crate::reload::watch(path.clone(), "audit policy", move || {
            let policy = portcullis_audit::Policy::from_file(&file)?;
            auditor.set_policy(portcullis_audit::PolicyEvaluator::new(policy));
            Ok(())
        });
    }
    if store.shared() {
        crate::replica::spawn(store.clone(), rbac.clone(), tokens.clone(), stop_rx.clone());
    }
    let state = AppState::new(server::State {
        audit: audit.clone(),
        policies,
        anonymous_auth: args.anonymous_auth,
        image_policy,
        pod_security,
        tokens,
        ldap,
        store: store.clone(),
        x509: x509.clone(),
        rbac,
        metrics,
        shutdown: stop_rx,
    });
    let app = server::router(state);
    tracing::info!(address = %local, "serving");
    if let Some(kubeconfig) = &generated.admin_kubeconfig {
        println!(
            "portcullis is serving on {server_url}; use it with: kubectl --kubeconfig {} get namespaces",
            kubeconfig.display()
        );
    }
    server::serve(listener, tls_config, app, shutdown_signal(), stop_tx).await?;
    if let Some(log) = audit.log() {
        log.flush().await.context("flushing the audit log")?;
    }
    if let Some(webhook) = audit.webhook()
        && let Err(e) = webhook.flush().await
    {
        tracing::error!(error = %e, "audit events not delivered to the webhook at shutdown");
    }
    store.close().await.context("closing the store")?;
    tracing::info!("stopped");
    Ok(())
}

/// Polls the client CA bundle once a second and swaps in a new x509 authenticator when it
/// changes; a bundle that does not load keeps the old one and logs why. (Connections reuse a
/// verdict for at most 10 s, so a removed CA stops working within that.)
fn watch_client_ca(path: PathBuf, x509: Arc<arc_swap::ArcSwap<X509Authenticator>>) {
    let file = path.clone();
    crate::reload::watch(path, "client CA bundle", move || {
        let certs = tls::read_certs(&file)?;
        x509.store(Arc::new(X509Authenticator::new(&certs)?));
        Ok(())
    });
}

/// The admission webhook configurations, as one YAML stream.
fn admission_webhook_config(args: &WebhookConfigArgs) -> Result<String> {
    use base64::Engine;
    let url = args.server.trim_end_matches('/');
    if !url.starts_with("https://") {
        bail!("--server must be an https:// URL, got `{}`", args.server);
    }
    let ca_path = args.data_dir.join("ca.crt");
    let ca = std::fs::read(&ca_path).with_context(|| {
        format!(
            "reading `{}` (run `portcullis serve` once to create it)",
            ca_path.display()
        )
    })?;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    let rules = "  rules:\n  - apiGroups: [\"\"]\n    apiVersions: [v1]\n    operations: [CREATE, UPDATE]\n    resources: [pods, pods/ephemeralcontainers, podtemplates, replicationcontrollers]\n  - apiGroups: [apps]\n    apiVersions: [v1]\n    operations: [CREATE, UPDATE]\n    resources: [deployments, replicasets, statefulsets, daemonsets]\n  - apiGroups: [batch]\n    apiVersions: [v1]\n    operations: [CREATE, UPDATE]\n    resources: [jobs, cronjobs]\n";
    let webhook = |kind: &str, name: &str, path: &str, extra: &str| {
        format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: portcullis\nwebhooks:\n- name: {name}\n  admissionReviewVersions: [v1, v1beta1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 10\n  clientConfig:\n    url: {url}{path}\n    caBundle: {ca}\n{extra}{rules}"
        )
    };
    Ok(format!(
        "{}---\n{}",
        webhook(
            "ValidatingWebhookConfiguration",
            "validate.portcullis.dev",
            "/admission/validate",
            "  namespaceSelector:\n    matchExpressions:\n    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}\n"
        ),
        webhook(
            "MutatingWebhookConfiguration",
            "mutate.portcullis.dev",
            "/admission/mutate",
            "  reinvocationPolicy: IfNeeded\n  namespaceSelector:\n    matchLabels:\n      portcullis.dev/pod-security-defaults: restricted\n",
        ),
    ))
}

/// Reads an image policy file (`--image-policy-file`, `lint --image-policy`).
pub(crate) fn load_image_policy(
    path: &std::path::Path,
) -> Result<portcullis_admission::image_policy::ImagePolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--image-policy-file `{}`", path.display()))?;
    let doc: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--image-policy-file `{}`: {e}", path.display()))?;
    portcullis_admission::image_policy::ImagePolicy::from_value(&doc)
        .with_context(|| format!("--image-policy-file `{}`", path.display()))
}

/// The audit trail of `serve`: the policy (Metadata for everything without a file) and the log.
fn build_auditor(args: &ServeArgs, metrics: &Arc<Metrics>) -> Result<server::audit::Auditor> {
    if args.audit_log_path.is_none() && args.audit_webhook_config_file.is_none() {
        return Ok(server::audit::Auditor::disabled());
    }
    let policy = match &args.audit_policy_file {
        Some(file) => portcullis_audit::Policy::from_file(file)
            .with_context(|| format!("--audit-policy-file `{}`", file.display()))?,
        None => portcullis_audit::Policy::default_metadata(),
    };
    let m = metrics.clone();
    let observer: portcullis_audit::log::BatchObserver =
        Arc::new(move |outcome: &portcullis_audit::log::BatchOutcome| {
            m.audit_write(outcome.duration.as_secs_f64());
        });
    let log = match &args.audit_log_path {
        Some(path) => {
            let mut config = portcullis_audit::log::LogConfig::new(path.clone());
            config.max_size = args.audit_log_maxsize.saturating_mul(1024 * 1024);
            config.max_backups = args.audit_log_maxbackup;
            config.max_age_days = args.audit_log_maxage;
            config.compress = args.audit_log_compress;
            config.mode = args
                .audit_log_mode
                .parse()
                .map_err(|e| anyhow::anyhow!("--audit-log-mode: {e}"))?;
            config.buffer_size = args.audit_log_batch_buffer_size.max(1);
            config.max_batch = args.audit_log_batch_max_size.max(1);
            config.observer = Some(observer.clone());
            Some(
                portcullis_audit::log::LogBackend::open(config)
                    .with_context(|| format!("--audit-log-path `{}`", path.display()))?,
            )
        }
        None => None,
    };
    let webhook = match &args.audit_webhook_config_file {
        Some(path) => {
            let endpoint = portcullis_audit::Endpoint::from_kubeconfig_file(
                path,
                portcullis_audit::webhook::KubeconfigOptions::default(),
            )
            .with_context(|| format!("--audit-webhook-config-file `{}`", path.display()))?;
            let mode: portcullis_audit::Mode = args
                .audit_webhook_mode
                .parse()
                .map_err(|e| anyhow::anyhow!("--audit-webhook-mode: {e}"))?;
            let mut config = portcullis_audit::WebhookConfig::new(mode);
            config.buffer_size = args.audit_webhook_batch_buffer_size.max(1);
            config.max_batch_size = args.audit_webhook_batch_max_size.max(1);
            if let Some(wait) = args.audit_webhook_batch_max_wait {
                config.max_batch_wait = wait;
            }
            if let Some(backoff) = args.audit_webhook_initial_backoff {
                config.initial_backoff = backoff;
            }
            config.observer = Some(observer);
            Some(portcullis_audit::WebhookBackend::start(
                endpoint,
                config,
                &tokio::runtime::Handle::current(),
            ))
        }
        None => None,
    };
    Ok(server::audit::Auditor::new(
        portcullis_audit::PolicyEvaluator::new(policy),
        log,
        webhook,
    ))
}

/// Reloads the image policy file when it changes.
fn watch_image_policy(
    path: PathBuf,
    policy: Arc<arc_swap::ArcSwapOption<portcullis_admission::image_policy::ImagePolicy>>,
) {
    let file = path.clone();
    crate::reload::watch(path, "image policy", move || {
        policy.store(Some(Arc::new(load_image_policy(&file)?)));
        Ok(())
    });
}

/// Which kube-apiserver webhook a configuration is for.
#[derive(Clone, Copy, Debug)]
enum WebhookKind {
    Authn,
    Authz,
}

fn webhook_config(args: &WebhookConfigArgs, kind: WebhookKind) -> Result<String> {
    use base64::Engine;
    let url = args.server.trim_end_matches('/');
    if !url.starts_with("https://") {
        bail!("--server must be an https:// URL, got `{}`", args.server);
    }
    let (user, path, flags) = match kind {
        WebhookKind::Authz => (
            "kube-apiserver-authz-webhook",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            "--authorization-webhook-config-file=<this file> --authorization-webhook-version=v1",
        ),
        WebhookKind::Authn => (
            "kube-apiserver-authn-webhook",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            "--authentication-token-webhook-config-file=<this file> --authentication-token-webhook-version=v1",
        ),
    };
    let (cert, key, ca) =
        pki::issue_client_certificate(&args.data_dir, user, Some(crate::rbac::WEBHOOK_CALLERS))?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    Ok(format!(
        "# kube-apiserver {flags}\n\
         apiVersion: v1\nkind: Config\nclusters:\n- name: portcullis\n  cluster:\n    server: {url}{path}\n    certificate-authority-data: {}\n\
         users:\n- name: kube-apiserver\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n- name: webhook\n  context:\n    cluster: portcullis\n    user: kube-apiserver\ncurrent-context: webhook\n",
        b64(&ca),
        b64(&cert),
        b64(&key),
    ))
}

/// The LDAP authenticator, when `--ldap-url` is given.
fn build_ldap(args: &ServeArgs) -> Result<Option<portcullis_authn::ldap::LdapAuthenticator>> {
    let Some(url) = args.ldap_url.clone() else {
        return Ok(None);
    };
    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
        bail!("--ldap-url must start with ldap:// or ldaps://, got `{url}`");
    }
    let bind_dn = args
        .ldap_bind_dn
        .clone()
        .context("--ldap-bind-dn is required with --ldap-url")?;
    let password_file = args
        .ldap_bind_password_file
        .clone()
        .context("--ldap-bind-password-file is required with --ldap-url")?;
    let bind_password = std::fs::read_to_string(&password_file)
        .with_context(|| format!("--ldap-bind-password-file `{}`", password_file.display()))?
        .trim_end_matches(['\r', '\n'])
        .to_owned();
    if bind_password.is_empty() {
        bail!(
            "--ldap-bind-password-file `{}` is empty",
            password_file.display()
        );
    }
    let user_base_dn = args
        .ldap_user_base_dn
        .clone()
        .context("--ldap-user-base-dn is required with --ldap-url")?;
    if !args.ldap_user_filter.contains("{username}") {
        bail!("--ldap-user-filter must contain {{username}}");
    }
    let tls = match &args.ldap_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in tls::read_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("--ldap-ca-file `{}`", ca.display()))?;
            }
            Some(Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth(),
            ))
        }
        None => None,
    };
    let mut salt = [0u8; 32];
    salt[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    salt[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    Ok(Some(portcullis_authn::ldap::LdapAuthenticator::new(
        portcullis_authn::ldap::LdapConfig {
            url,
            bind_dn,
            bind_password,
            user_base_dn,
            user_filter: args.ldap_user_filter.clone(),
            group_base_dn: args.ldap_group_base_dn.clone().unwrap_or_default(),
            group_filter: args.ldap_group_filter.clone(),
            username_attribute: args.ldap_username_attribute.clone(),
            uid_attribute: args.ldap_uid_attribute.clone(),
            group_name_attribute: args.ldap_group_name_attribute.clone(),
            start_tls: args.ldap_start_tls,
            tls,
            timeout: args.ldap_timeout,
            success_ttl: args.ldap_cache_ttl,
            failure_ttl: args.ldap_failure_cache_ttl,
        },
        salt,
    )))
}

/// The bearer-token authenticators from the flags (and the data directory's signing key).
fn build_tokens(args: &ServeArgs) -> Result<crate::server::tokens::Tokens> {
    use portcullis_authn::serviceaccount::{KeySet, Signer, Verifier};
    let salt: [u8; 32] = {
        let mut s = [0u8; 32];
        s[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        s[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        s
    };
    let file = match &args.token_auth_file {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("--token-auth-file `{}`", path.display()))?;
            let parsed = portcullis_authn::token_file::TokenFile::parse(
                &bytes,
                &path.display().to_string(),
                salt,
            )?;
            for w in &parsed.warnings {
                tracing::warn!(path = %path.display(), "{w}");
            }
            Some((path.clone(), parsed))
        }
        None => None,
    };
    let sa_keys = pki::service_account_keys(
        &args.data_dir,
        args.service_account_signing_key_file.as_deref(),
        &args.service_account_key_files,
    )?;
    let keys =
        KeySet::from_spki_ders(&sa_keys.verification_spkis).context("service-account keys")?;
    let signer = Signer::from_pkcs8_pem(&sa_keys.signing_pem, &sa_keys.signing_spki)
        .context("service-account signing key")?;
    let issuer = args
        .service_account_issuers
        .first()
        .cloned()
        .context("--service-account-issuer is required")?;
    let audiences = if args.api_audiences.is_empty() {
        vec![issuer.clone()]
    } else {
        args.api_audiences.clone()
    };
    let verifier = Verifier::new(
        keys,
        args.service_account_issuers.clone(),
        audiences.clone(),
    );
    Ok(crate::server::tokens::Tokens::new(
        file,
        salt,
        verifier,
        signer,
        issuer,
        audiences,
        args.token_cache_ttl,
    ))
}

/// Runs `start` until it succeeds, retrying while the store cannot be reached (as
/// kube-apiserver waits for etcd at start); any other failure ends start-up with its error.
async fn until_store_answers<T, F, Fut>(start: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        match start().await {
            Ok(v) => return Ok(v),
            Err(e)
                if e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<StoreError>(),
                        Some(StoreError::Unavailable(_))
                    )
                }) =>
            {
                tracing::warn!(error = %format!("{e:#}"), "storage unavailable at start; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The namespaces kube-apiserver creates at start.
async fn bootstrap_namespaces(store: &dyn Store) -> Result<()> {
    let Some(ns) = portcullis_api::registry::lookup("", "v1", "namespaces") else {
        bail!("namespaces are not registered");
    };
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now,
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        match store
            .txn(vec![TxnOp::Create {
                key: ns.key(None, name),
                value: serde_json::to_vec(&obj)?,
            }])
            .await
        {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e).context("creating the default namespaces"),
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("received a termination signal");
}
