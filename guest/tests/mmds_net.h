/*
 * What the MMDS guest (guest/tests/mmds.c) and its host test
 * (tests/guest/mmds_tests.c) agree on: the addresses, the metadata, and
 * the stages at which the guest stops (SYNC) for the host to check the
 * MMDS's counters, with what each stage sent.
 */
#ifndef MMDS_NET_H
#define MMDS_NET_H

#define MN_GUEST_IP 0xa9fe0002u /* 169.254.0.2 */
#define MN_MMDS_IP  0xa9fea9feu /* 169.254.169.254 (the default) */
#define MN_AMI_ID   "ami-12345678"
#define MN_METADATA "{\"latest\":{\"meta-data\":{\"ami-id\":\"" MN_AMI_ID "\"}}}"

/* SYNC stages; the value is what the stage says about itself */
#define MN_ARP       1  /* an ARP request answered */
#define MN_V2        2  /* token, GET with it, GET without (401), FIN: one connection */
#define MN_HEADERS   3  /* value: frames with broken headers sent to the MMDS */
#define MN_WINDOW    4  /* zero, shrinking, acks of unsent data, out of order, overlap */
#define MN_RST       5  /* an RST mid-request ends the connection */
#define MN_FLOOD     6  /* value: SYNs sent; the 16-connection bound holds */
#define MN_FLOOD_RST 7  /* the flood's connections reset by the guest */
#define MN_TOO_BIG   8  /* a request larger than the buffer, and a body too large */
#define MN_RESEND    9  /* value: retransmissions the guest saw */
#define MN_LAST      10 /* a well-formed request still works */

/* stage MN_HEADERS: how many of its frames fall in each of the MMDS's
 * counters, and how many go to the TAP (too short to be the MMDS's) */
#define MN_BAD_ETH      9 /* rx_bad_eth */
#define MN_ACCEPTED_ERR 2 /* rx_accepted_err: TCP checksum, ARP hardware type */
#define MN_UNUSUAL      3 /* rx_accepted_unusual: UDP, a fragment, the probe's port */
#define MN_TO_TAP       1
#define MN_FLOOD_SYNS   24

#endif
