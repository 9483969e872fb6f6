// Copied from shared/anchors/c/afpkt_bench.c: the C AF_PACKET sender bench/emit.sh runs as the kernel-path ceiling.
// AF_PACKET TX micro-benchmark: sendto vs sendmmsg vs PACKET_TX_RING (TPACKET_V2), optional PACKET_QDISC_BYPASS.
// usage: afpkt_bench IFNAME MODE(sendto|sendmmsg|txring) BYPASS(0|1) COUNT [FRAMELEN=64] [BATCH=32]
// Sends COUNT copies of one Ethernet/IPv4/UDP frame (10.200.0.1 -> 10.200.0.2:9, dst MAC 02:00:00:00:00:fe = not the peer,
// so the receiving veth drops it at L3 cheaply). Prints pps. Socket protocol 0 => socket receives nothing.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <sys/resource.h>

static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static uint16_t csum(const void *p,int n){const uint16_t*w=p;uint32_t s=0;while(n>1){s+=*w++;n-=2;}if(n)s+=*(const uint8_t*)w;while(s>>16)s=(s&0xffff)+(s>>16);return ~s;}
static int build(uint8_t *f,int len){
  memset(f,0,len); uint8_t dst[6]={2,0,0,0,0,0xfe}, src[6]={2,0,0,0,0,1};
  memcpy(f,dst,6); memcpy(f+6,src,6); f[12]=0x08; f[13]=0;
  uint8_t *ip=f+14; int iplen=len-14; ip[0]=0x45; ip[2]=iplen>>8; ip[3]=iplen&0xff; ip[6]=0x40; ip[8]=64; ip[9]=17;
  ip[12]=10;ip[13]=200;ip[14]=0;ip[15]=1; ip[16]=10;ip[17]=200;ip[18]=0;ip[19]=2;
  uint16_t c=csum(ip,20); memcpy(ip+10,&c,2);
  uint8_t *u=ip+20; int ulen=iplen-20; u[0]=10000>>8;u[1]=10000&0xff;u[2]=0;u[3]=9;u[4]=ulen>>8;u[5]=ulen&0xff; // udp csum 0
  return len;}
int main(int argc,char**argv){
  if(argc<5){fprintf(stderr,"usage\n");return 1;}
  const char*ifn=argv[1],*mode=argv[2]; int bypass=atoi(argv[3]); long count=atol(argv[4]);
  int len=argc>5?atoi(argv[5]):64, batch=argc>6?atoi(argv[6]):32;
  int fd=socket(AF_PACKET,SOCK_RAW,0); if(fd<0){perror("socket");return 1;}
  struct sockaddr_ll sll={0}; sll.sll_family=AF_PACKET; sll.sll_ifindex=if_nametoindex(ifn); sll.sll_protocol=0;
  if(!sll.sll_ifindex){perror("if_nametoindex");return 1;}
  if(bind(fd,(struct sockaddr*)&sll,sizeof sll)<0){perror("bind");return 1;}
  if(bypass){int one=1; if(setsockopt(fd,SOL_PACKET,PACKET_QDISC_BYPASS,&one,sizeof one)<0)perror("QDISC_BYPASS");}
  int sndbuf=4<<20; setsockopt(fd,SOL_SOCKET,SO_SNDBUF,&sndbuf,sizeof sndbuf);
  uint8_t frame[2048]; build(frame,len);
  long sent=0, eagain=0; double t0=now();
  if(!strcmp(mode,"sendto")){
    while(sent<count){ssize_t r=send(fd,frame,len,0); if(r==len)sent++; else if(errno==ENOBUFS||errno==EAGAIN)eagain++; else {perror("send");break;}}
  } else if(!strcmp(mode,"sendmmsg")){
    struct mmsghdr *m=calloc(batch,sizeof *m); struct iovec iov={frame,len};
    for(int i=0;i<batch;i++){m[i].msg_hdr.msg_iov=&iov;m[i].msg_hdr.msg_iovlen=1;}
    while(sent<count){int n=batch; if(count-sent<n)n=count-sent; int r=sendmmsg(fd,m,n,0); if(r>0)sent+=r; else if(errno==ENOBUFS||errno==EAGAIN)eagain++; else {perror("sendmmsg");break;}}
  } else if(!strcmp(mode,"txring")){
    int v=TPACKET_V2; if(setsockopt(fd,SOL_PACKET,PACKET_VERSION,&v,sizeof v)<0){perror("ver");return 1;}
    struct tpacket_req req={.tp_block_size=1<<16,.tp_block_nr=64,.tp_frame_size=2048}; req.tp_frame_nr=req.tp_block_size/req.tp_frame_size*req.tp_block_nr;
    if(setsockopt(fd,SOL_PACKET,PACKET_TX_RING,&req,sizeof req)<0){perror("TX_RING");return 1;}
    size_t sz=(size_t)req.tp_block_size*req.tp_block_nr; uint8_t*ring=mmap(0,sz,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0); if(ring==MAP_FAILED){perror("mmap");return 1;}
    unsigned nf=req.tp_frame_nr, idx=0; long queued=0;
    t0=now();
    while(sent<count){
      int filled=0;
      while(filled<batch && queued<count){
        struct tpacket2_hdr*h=(void*)(ring+(size_t)idx*req.tp_frame_size);
        if(h->tp_status!=TP_STATUS_AVAILABLE) break;
        memcpy((uint8_t*)h+TPACKET2_HDRLEN-sizeof(struct sockaddr_ll),frame,len); h->tp_len=len;
        __sync_synchronize(); h->tp_status=TP_STATUS_SEND_REQUEST; idx=(idx+1)%nf; filled++; queued++;}
      int r=send(fd,NULL,0,0); if(r<0&&errno!=ENOBUFS&&errno!=EAGAIN){perror("send ring");break;}
      if(r<0)eagain++;
      sent=queued; // approx: frames handed to kernel; final drain below
      if(!filled){struct pollfd p={fd,POLLOUT,0}; poll(&p,1,1);}
    }
    // drain: wait until all frames returned
    for(int k=0;k<100000;k++){int busy=0;for(unsigned i=0;i<nf;i++){struct tpacket2_hdr*h=(void*)(ring+(size_t)i*req.tp_frame_size);if(h->tp_status!=TP_STATUS_AVAILABLE&&!(h->tp_status&TP_STATUS_WRONG_FORMAT)){busy=1;break;}} if(!busy)break; send(fd,NULL,0,0);}
  } else {fprintf(stderr,"bad mode\n");return 1;}
  double dt=now()-t0; struct rusage ru; getrusage(RUSAGE_SELF,&ru);
  printf("mode=%s bypass=%d len=%d batch=%d sent=%ld time=%.3fs pps=%.0f Mbps_L2=%.1f retries=%ld user=%.2fs sys=%.2fs\n",mode,bypass,len,batch,sent,dt,sent/dt,sent*len*8/dt/1e6,eagain,
    ru.ru_utime.tv_sec+ru.ru_utime.tv_usec*1e-6, ru.ru_stime.tv_sec+ru.ru_stime.tv_usec*1e-6);
  return 0;}
