# PCS-002 (medium): containers should declare CPU and memory requests and limits.
package portcullis.pcs002

import data.portcullis.lib

warn contains msg if {
	some c in lib.containers
	some kind in ["requests", "limits"]
	some res in ["cpu", "memory"]
	not c.resources[kind][res]
	msg := sprintf("PCS-002 [medium]: container %q has no %s.%s; fix: set resources.%s.%s", [c.name, kind, res, kind, res])
}
