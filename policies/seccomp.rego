# PCS-005 (high): seccomp must not be disabled; RuntimeDefault or Localhost profiles only.
package portcullis.pcs005

import data.portcullis.lib

allowed := {"RuntimeDefault", "Localhost"}

deny contains msg if {
	t := lib.pod_spec.securityContext.seccompProfile.type
	not t in allowed
	msg := sprintf("PCS-005 [high]: the pod's seccompProfile is %q; fix: use RuntimeDefault (or a Localhost profile)", [t])
}

deny contains msg if {
	some c in lib.containers
	t := c.securityContext.seccompProfile.type
	not t in allowed
	msg := sprintf("PCS-005 [high]: container %q sets seccompProfile %q; fix: use RuntimeDefault (or a Localhost profile)", [c.name, t])
}
