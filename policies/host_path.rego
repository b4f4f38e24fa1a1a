# PCS-004 (high): hostPath volumes expose the node's filesystem.
package portcullis.pcs004

import data.portcullis.lib

deny contains msg if {
	some v in lib.pod_spec.volumes
	v.hostPath
	msg := sprintf("PCS-004 [high]: volume %q uses hostPath %q; fix: use a persistentVolumeClaim, configMap, secret or emptyDir", [v.name, v.hostPath.path])
}
