/**
 * The flow matrix (components/flows.ts) against what the shipped scripts dial. Every line of a
 * shipped script that runs a networked command must be classified here with the parties it
 * reaches; every such party and port must be a flow of the table citing that script, and every
 * flow citing a script must be one of the script's dials. A new network call in a script fails
 * this test until its flow (and so its security group rule) is in the table.
 * test/flows.test.ts runs etcd-rejoin.sh for real on rendered machines; this test covers every line.
 */
import * as fs from "fs";
import * as path from "path";
import { FLOWS, Party } from "../components/flows";
import { SCRIPTS_DIR, ScriptNeeds, scriptsFor, shippedScript } from "../cloud-init/render";

/** Commands that open connections, at a command position once quoted strings are gone. */
const NETWORKED = /(^|[\s;|&(!{])(curl|aws|kubectl|lock_kubectl|helm|etcdctl_run|ctl|ctr|snap install|apt_get|apt_install|apt_update|apt-get|kubeadm (?:init|join|reset|token)|openssl s_client)\b/;

type Dial = [Party, number];
/** Per script: a pattern of the (continuation-joined) line, and what it dials; [] for this machine only. */
const DIALS: Record<string, Array<[RegExp, Dial[]]>> = {
  "addons.sh": [
    [/snap install helm/, [["internet", 443]]],
    // The chart from its repository, the release through admin.conf's controlPlaneEndpoint.
    // (A repository URL with --repo, or an OCI reference.)
    [/helm upgrade --install/, [["internet", 443], ["apiLoadBalancer", 6443]]],
    [/kubectl apply -f "\$storage_class"/, [["apiLoadBalancer", 6443]]],
    [/kubectl -n "\$namespace" patch/, [["apiLoadBalancer", 6443]]],
  ],
  "boot.sh": [[/aws s3api get-object/, [["s3", 443]]]],
  "cert-renew.sh": [
    // This machine's own components: its address, or its loopback.
    [/openssl s_client -connect "\$1"/, []],
    [/curl .*"http:\/\/\$LOCAL_ADDRESS:2381\/health"/, []],
    [/curl .*"https:\/\/\$NODE_IP:6443\/readyz"/, []],
    [/curl .*--insecure "https:\/\/\$\(component_address/, []],
    // The gate before a restart: the other members (masters when stacked, etcd machines when
    // external) and the other masters' API servers.
    [/etcdctl_run --endpoints="\$client" endpoint health/, [["controlPlane", 2379], ["etcd", 2379]]],
    [/curl .*"\$endpoint\/health"/, [["etcd", 2379]]],
    [/curl .*"https:\/\/\$ip:6443\/readyz"/, [["controlPlane", 6443]]],
  ],
  "bootstrap.sh": [
    // A control plane node's kubeadm reset removes its stacked etcd member through the others.
    [/kubeadm reset -f/, [["controlPlane", 2379]]],
    [/curl .*"\$endpoint\/health"/, [["etcd", 2379]]],
    [/kubeadm init --config/, [["apiLoadBalancer", 6443], ["etcd", 2379]]],
    // A joining master's preflight checks external etcd; a stacked one's join adds its member.
    [/kubeadm join --config/, [["apiLoadBalancer", 6443], ["controlPlane", 2379], ["etcd", 2379]]],
    // http://127.0.0.1:2381, the member's own metrics listener.
    [/curl .*"\$ETCD_HEALTH_URL"/, []],
    // The joiner kubeconfig's server is controlPlaneEndpoint.
    [/kubeadm token create --kubeconfig "\$JOINER_KUBECONFIG"/, [["apiLoadBalancer", 6443]]],
    // Master 0 asks the other masters' API servers directly, and reads and writes the init marker.
    [/curl .*"https:\/\/\$1:6443\/readyz"/, [["controlPlane", 6443]]],
    [/aws ssm (get|put)-parameter/, [["ssm", 443]]],
  ],
  "day2.sh": [
    // The Ubuntu archive (http) and pkgs.k8s.io (https), for an upgrade's packages.
    [/apt_get\(\) \{ apt-get/, [["internet", 80], ["internet", 443]]],
    [/apt_get (update|install)/, [["internet", 80], ["internet", 443]]],
    [/^install_packages kubelet kubectl$/, [["internet", 80], ["internet", 443]]],
    [/curl -fsSL .*"\$repo\/Release.key"/, [["internet", 443]]],
    // admin.conf's server is controlPlaneEndpoint.
    [/^kctl\(\) \{ kubectl --kubeconfig/, [["apiLoadBalancer", 6443]]],
    // kubeadm reset reads the cluster's configuration through admin.conf.
    [/kubeadm reset -f --skip-phases remove-etcd-member/, [["apiLoadBalancer", 6443]]],
    [/curl .*"\$base\/latest\/(api\/token|user-data)"/, [["instanceMetadata", 80]]],
    [/aws s3api get-object/, [["s3", 443]]],
    // The member on this machine; its own API server; the controller manager and scheduler on loopback.
    [/etcdctl_run --endpoints="https:\/\/\$NODE_IP:2379"/, []],
    [/curl .*"https:\/\/\$NODE_IP:6443\/readyz"/, []],
    [/https:\/\/127\.0\.0\.1:1025[79]\/healthz/, []],
    // Every member's client URL: masters when stacked, etcd members when external.
    [/etcdctl_run --endpoints="\$(urls|others)"/, [["controlPlane", 2379], ["etcd", 2379]]],
    [/\/dev\/tcp\/\$ip\/2379/, [["etcd", 2379]]],
    [/curl .*"https:\/\/\$API_ENDPOINT\/readyz"/, [["apiLoadBalancer", 6443]]],
  ],
  "etcd-backup.sh": [
    // https://$NODE_IP:2379: the member on this machine.
    [/etcdctl_run --endpoints "\$endpoint"/, []],
    [/aws s3 cp .*"s3:\/\/\$BACKUP_BUCKET\/\$key"/, [["s3", 443]]],
  ],
  "etcd-rejoin.sh": [
    [/kubeadm init phase certs etcd-healthcheck-client/, []],
    // The definition; its callers below name the endpoints.
    [/^ctl\(\) \{/, []],
    // The other members' client URLs: masters when stacked, etcd members when external.
    [/ctl "\$(ep|EPS)"/, [["controlPlane", 2379], ["etcd", 2379]]],
  ],
  "etcd-restore.sh": [
    [/aws s3 cp .*"s3:\/\/\$BACKUP_BUCKET\/\$key" "\$workdir\/snapshot.db"/, [["s3", 443]]],
    [/\/dev\/tcp\/\$NODE_IP\/2379/, []],
  ],
  "etcdctl.sh": [
    [/ctr -n k8s.io image pull "\$ETCD_IMAGE"/, [["internet", 443]]],
    // etcdctl in the image's container on the host network: its callers name the endpoints.
    [/ctr -n k8s.io run --rm --net-host/, []],
    [/^etcdctl_run\(\) \{/, []],
    // The etcd members' lock, taken on external members only (its callers: cert-renew.sh, day2.sh).
    [/etcdctl_run --endpoints="\$ETCD_LOCK_ENDPOINTS"/, [["etcd", 2379]]],
  ],
  "fetch-secrets.sh": [[/aws secretsmanager get-secret-value/, [["secretsManager", 443]]]],
  "token-rotate.sh": [
    [/aws secretsmanager (get|put)-secret-value/, [["secretsManager", 443]]],
    // admin.conf's server is controlPlaneEndpoint.
    [/kubeadm token (list|create) --kubeconfig "\$ADMIN"/, [["apiLoadBalancer", 6443]]],
  ],
  "install.sh": [
    // The Ubuntu archive (http) and, once added, pkgs.k8s.io (https).
    [/apt_get\(\) \{ apt-get/, [["internet", 80], ["internet", 443]]],
    [/apt_get (update|install)/, [["internet", 80], ["internet", 443]]],
    [/apt_get -o APT::Update::Error-Mode=any update/, [["internet", 80], ["internet", 443]]],
    // The two helpers above: every install refreshes the lists first.
    [/apt_update\(\) \{|apt_install\(\) \{/, [["internet", 80], ["internet", 443]]],
    [/apt_install -y/, [["internet", 80], ["internet", 443]]],
    [/curl -fsSL .*"\$KUBE_REPO\/Release.key"/, [["internet", 443]]],
    [/snap install aws-cli/, [["internet", 443]]],
    // Package names, not commands.
    [/^apt-mark hold kubelet kubeadm kubectl$/, []],
  ],
  "join-lock.sh": [
    // The joiner kubeconfig's server is controlPlaneEndpoint.
    [/lock_kubectl\(\) \{ kubectl --kubeconfig "\$JOINER_KUBECONFIG"/, [["apiLoadBalancer", 6443]]],
    [/lock_kubectl (create|get|replace|delete)/, [["apiLoadBalancer", 6443]]],
  ],
  "node-ready.sh": [
    // kubelet.conf's server is controlPlaneEndpoint.
    [/kubectl --kubeconfig "\$KUBERNETES_DIR\/kubelet.conf"/, [["apiLoadBalancer", 6443]]],
    [/aws autoscaling (describe-auto-scaling-instances|complete-lifecycle-action|set-instance-health)/, [["awsApis", 443]]],
  ],
  "lib.sh": [
    [/curl .*"\$base\/latest\//, [["instanceMetadata", 80]]],
    [/aws autoscaling set-instance-health/, [["awsApis", 443]]],
    [/aws cloudwatch put-metric-data/, [["awsApis", 443]]],
    [/curl .*"https:\/\/\$API_ENDPOINT\/readyz"/, [["apiLoadBalancer", 6443]]],
  ],
};

/** A shipped script's lines, continuation lines joined, here-document bodies dropped. */
function commandLines(script: string): string[] {
  const text = shippedScript(fs.readFileSync(path.join(SCRIPTS_DIR, script), "utf8")).replace(/\\\n\s*/g, " ");
  const out: string[] = [];
  let heredocEnd: string | undefined;
  for (const line of text.split("\n")) {
    if (heredocEnd !== undefined) {
      if (line.trim() === heredocEnd) heredocEnd = undefined;
      continue;
    }
    out.push(line.trim());
    const start = /<<-?\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\1/.exec(line.replace(/<<</g, ""));
    if (start) heredocEnd = start[2];
  }
  return out;
}

/** Whether a line runs a networked command: quoted strings and messages are not commands. */
function networked(line: string): boolean {
  if (/^(log|die) /.test(line)) return false;
  // bash's own TCP client, quoted or not.
  if (/\/dev\/tcp\//.test(line)) return true;
  const bare = line.replace(/"(\\.|[^"\\])*"/g, '""').replace(/'[^']*'/g, "''").replace(/command -v \S+/g, "").replace(/\|\| (log|die) .*$/, "");
  return NETWORKED.test(bare);
}

const SCRIPTS = fs.readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith(".sh")).sort();
const SCRIPT_OF = (where: string) => /^cloud-init\/scripts\/([a-z0-9-]+\.sh)$/.exec(where)?.[1];
const key = ([party, port]: Dial) => `${party}:${port}`;

describe("the scripts' network calls and the flow matrix", () => {
  it("every networked line of every shipped script is classified, and every classification matches a line", () => {
    const unclassified: string[] = [];
    const unused: string[] = [];
    for (const script of SCRIPTS) {
      const lines = commandLines(script).filter(networked);
      const dials = DIALS[script] ?? [];
      for (const l of lines) if (!dials.some(([re]) => re.test(l))) unclassified.push(`${script}: ${l}`);
      for (const [re] of dials) if (!lines.some((l) => re.test(l))) unused.push(`${script}: ${re}`);
    }
    expect(unclassified).toEqual([]);
    expect(unused).toEqual([]);
  });

  it("every party a script dials is a flow of the table that cites the script", () => {
    const cited = new Set(FLOWS.flatMap((f) => f.by.flatMap((b) => (SCRIPT_OF(b.where) ? (typeof f.to === "string" ? [f.to] : f.to).map((to) => `${SCRIPT_OF(b.where)} ${to}:${"port" in f ? f.port : ""}`) : []))));
    const missing = Object.entries(DIALS).flatMap(([script, ds]) => ds.flatMap(([, d]) => d.map((x) => `${script} ${key(x)}`))).filter((x) => !cited.has(x));
    expect([...new Set(missing)]).toEqual([]);
  });

  it("every flow that cites a script is one of the script's dials", () => {
    const dialed = new Set(Object.entries(DIALS).flatMap(([script, ds]) => ds.flatMap(([, d]) => d.map((x) => `${script} ${key(x)}`))));
    const extra = FLOWS.flatMap((f) =>
      f.by.flatMap((b) => {
        const script = SCRIPT_OF(b.where);
        if (!script) return [];
        return (typeof f.to === "string" ? [f.to] : f.to).map((to) => `${script} ${to}:${"port" in f ? f.port : ""}`).filter((x) => !dialed.has(x));
      }),
    );
    expect(extra).toEqual([]);
  });

  it("a flow cites a script only for sources that ship it (cloud-init/render.ts scriptsFor)", () => {
    const roleOf = { controlPlane: "control-plane", worker: "worker", etcd: "etcd" } as const;
    const wrong = FLOWS.flatMap((f) =>
      f.by.flatMap((b) => {
        const script = SCRIPT_OF(b.where);
        if (!script) return [];
        const sources = (typeof f.from === "string" ? [f.from] : f.from).filter((p): p is keyof typeof roleOf => p in roleOf);
        const topologies = f.when?.topology ? [f.when.topology] : (["stacked", "external"] as const);
        return sources
          .filter((p) => p !== "etcd" || topologies.includes("external"))
          .filter((p) => !topologies.some((t) => scriptsFor({ role: roleOf[p], etcdTopology: t, backup: true, addons: true, launchHook: true } as ScriptNeeds).includes(script)))
          .map((p) => `${p} does not ship ${script}`);
      }),
    );
    expect(wrong).toEqual([]);
    expect(FLOWS.some((f) => f.by.some((b) => SCRIPT_OF(b.where)))).toBe(true);
  });

  it("the scanner sees through messages and quoting, and not past a real call", () => {
    expect(networked('log "installing kubelet from $KUBE_REPO with curl"')).toBe(false);
    expect(networked('[[ -s $KUBECONFIG ]] || die "$EXIT_CONFIG" "kubeadm init should have written it"')).toBe(false);
    expect(networked("if ! command -v helm >/dev/null; then")).toBe(false);
    expect(networked('retry 3 1 aws s3 cp "$f" "s3://b/k" || die 11 "upload failed"')).toBe(true);
    expect(networked('out=$(ctl "$EPS" member list)')).toBe(true);
    expect(networked("port_closed() { ! (exec 3<>\"/dev/tcp/$NODE_IP/2379\") 2>/dev/null; }")).toBe(true);
  });
});
