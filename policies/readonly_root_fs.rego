# PCS-001 (low): containers should mount their root filesystem read-only.
package portcullis.pcs001

import data.portcullis.lib

warn contains msg if {
	some c in lib.containers
	not c.securityContext.readOnlyRootFilesystem
	msg := sprintf("PCS-001 [low]: container %q does not set securityContext.readOnlyRootFilesystem; fix: set it to true and mount an emptyDir where the app writes", [c.name])
}
