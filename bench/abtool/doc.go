// Command abtool is the NSX A/B lab's traffic and fault tool
// (bench/nsx-ab.sh runs it):
//
//	abtool server -listen ADDR        a small HTTP backend without keep-alive:
//	                                  every response closes the connection, and
//	                                  the backend sends the first FIN
//	abtool load -url URL -n N -c C    an HTTP load client; counts statuses
//	                                  (200, 502, 504, others) and transport
//	                                  errors separately, prints one key=value line;
//	                                  -rate paces it, each request carries its id
//	                                  (?ab=N) and -failures lists the failed ones
//	abtool attribute -failures F -nginx-log L
//	                                  gives each failed request its cause from
//	                                  nginx's error log line for that id: the
//	                                  middle box's (reset, refused, timed out,
//	                                  premature close, ICMP; no line at all counts
//	                                  here too) or the lab's (nginx's own source
//	                                  ports or limits, the client's own dial error)
//	abtool inject -iface IF ...       the fault injector, run on the backend's
//	                                  interface: it captures the backend's FINs
//	                                  (AF_PACKET) and re-sends each one after a
//	                                  delay toward the middle box, so the middle
//	                                  box sees a stray FIN for a 4-tuple whose
//	                                  flow has ended; it also counts the ICMP
//	                                  errors (type 3 code 3 above all) and RSTs
//	                                  the backend receives, and prints its
//	                                  counters as one key=value line on SIGINT
//	                                  or SIGTERM
//
// No netem on the lab's kernel, hence a user-space injector. The frame
// logic (which frames are the backend's FINs, the rewrite of a re-sent FIN,
// ICMP classification), the client's counting and the nginx error log
// attribution are plain functions with unit tests that need no root.
package main
