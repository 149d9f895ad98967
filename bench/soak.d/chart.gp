# bench/soak's chart: four panels over the soak's time, from soak.csv.
# gnuplot -e "csv='soak.csv'; png='soak.png'; title='...'" chart.gp
set datafile separator ','
set key autotitle columnhead left top font ',9'
set terminal pngcairo size 1400,1000 font ',10'
set output png
set multiplot layout 2,2 title title
set grid
set xlabel 'minutes'

set title 'reached rates (per second)'
set logscale y
plot csv using ($1/60):2 with linespoints title 'submissions', \
     '' using ($1/60):5 with linespoints title 'status changes', \
     '' using ($1/60):12 with linespoints title 'events processed', \
     '' using ($1/60):8 with linespoints title 'dashboard refreshes'
unset logscale y

set title 'latency (ms)'
set logscale y
plot csv using ($1/60):13 with linespoints title 'commit-to-processed p50', \
     '' using ($1/60):14 with linespoints title 'commit-to-processed p99', \
     '' using ($1/60):10 with linespoints title 'dashboard refresh p99', \
     '' using ($1/60):4 with linespoints title 'submission schedule lag, max', \
     '' using ($1/60):16 with linespoints title 'claim, mean'
unset logscale y

set title 'integration.events: claim indexes (kB), table (MB)'
set ytics nomirror
set y2tics
set ylabel 'kB'
set y2label 'MB'
plot csv using ($1/60):19 with linespoints title 'events\_due\_idx (kB)', \
     '' using ($1/60):20 with linespoints title 'events\_unfinished\_idx (kB)', \
     '' using ($1/60):17 axes x1y2 with linespoints title 'events table (MB)', \
     '' using ($1/60):18 axes x1y2 with linespoints title 'events indexes (MB)'
unset y2tics
unset y2label
set ytics mirror

set title 'integration.events: rows'
set ylabel 'rows'
plot csv using ($1/60):21 with linespoints title 'live', \
     '' using ($1/60):22 with linespoints title 'dead'
unset multiplot
