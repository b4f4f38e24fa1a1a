# PCS-007 (low): workloads should carry the recommended app.kubernetes.io/name label.
package portcullis.pcs007

import data.portcullis.lib

warn contains msg if {
	lib.pod_spec
	not input.request.object.metadata.labels["app.kubernetes.io/name"]
	msg := sprintf("PCS-007 [low]: %s %q has no app.kubernetes.io/name label; fix: add it", [input.request.kind.kind, input.request.object.metadata.name])
}
