# PCS-003 (medium): pods that do not call the API should not get a service-account token.
package portcullis.pcs003

import data.portcullis.lib

warn contains msg if {
	lib.pod_spec
	not lib.pod_spec.automountServiceAccountToken == false
	msg := "PCS-003 [medium]: the pod mounts a service-account token; fix: set automountServiceAccountToken: false unless it calls the Kubernetes API"
}
