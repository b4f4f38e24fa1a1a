# PCS-006 (low): containers should not listen on privileged ports (< 1024).
package portcullis.pcs006

import data.portcullis.lib

warn contains msg if {
	some c in lib.containers
	some p in c.ports
	p.containerPort < 1024
	msg := sprintf("PCS-006 [low]: container %q listens on privileged port %d; fix: listen on a port >= 1024 and map it in the Service", [c.name, p.containerPort])
}
